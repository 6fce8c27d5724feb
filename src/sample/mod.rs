//! Samplers: what the agent measures.

pub mod cpu;
pub mod health;
