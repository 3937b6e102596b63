//! One module per platform; each stream is one [`crate::engine::Source`].

pub mod build;
pub mod rocketchat;
pub mod zoom;
