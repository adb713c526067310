//! Media Services v2: the wire model shared by the client and the emulator, authentication,
//! and the client.

pub mod auth;
pub mod client;
pub mod model;
pub mod odata;
