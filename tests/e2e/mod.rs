//! The end-to-end harness (`harness`) and the servers it starts besides the real ones (`dns`,
//! `servers`), for tests/e2e_docker.rs, tests/e2e_skopeo.rs, tests/e2e_doctor.rs and
//! tests/e2e_containerd.rs.

// Each e2e test binary uses a part of the harness.
#![allow(dead_code)]

pub mod dns;
pub mod harness;
pub mod servers;
