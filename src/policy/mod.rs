//! Policy rules as data and pure functions: which clients may use regdoc, which destinations it
//! may reach, whether a configuration would make it an open relay. No sockets here: the
//! transport asks, these functions answer, and the tests call them directly.

pub mod addr;
pub mod destination;
pub mod relay;
