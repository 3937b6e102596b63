//! One module per platform; each stream is one [`crate::engine::Source`].

pub mod rocketchat;
pub mod zoom;
