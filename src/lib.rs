//! cwpulse: CPU and health-route metrics from an EC2 instance to CloudWatch,
//! per instance and per Auto Scaling group.
//!
//! Data flows `sample` → `window` → `publish`; `config`, `identity` and
//! `shutdown` sit beside them, and `agent` wires them together.

pub mod agent;
pub mod alarms;
pub mod config;
pub mod cost;
pub mod identity;
pub mod publish;
pub mod sample;
pub mod shutdown;
pub mod spool;
pub mod window;
