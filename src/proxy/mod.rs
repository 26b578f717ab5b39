//! Protocol handling of client connections: CONNECT, absolute-form forwarding, replies.
