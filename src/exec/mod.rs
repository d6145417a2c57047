//! Running trials: the device pool, the trial process protocol, the
//! `command` objective's templates and the tokio scheduler.
//!
//! Each trial is a child process pinned to one slot of the pool; it talks
//! to the controller through JSON lines on stdout ([`protocol`]). The
//! [`scheduler`] launches, watches, times out, retries and stops trials;
//! what to run and what to record is decided by a [`scheduler::Controller`];
//! how a process is started on its slot and ended is an executor's
//! ([`launch`]): this machine ([`launch::Local`]) or the job steps of a
//! Slurm allocation ([`slurm`]).

pub mod command;
pub mod constraints;
pub mod controller;
pub mod devices;
pub mod launch;
pub mod objectives;
pub mod protocol;
pub mod queue;
pub mod scheduler;
pub mod slurm;

pub use command::CommandTemplate;
pub use controller::{trial_seed, StudyController, StudySetup, TrialToRun};
pub use devices::{build_pool, Device, DeviceRequest, Machine, PoolSpec, Slot};
pub use launch::TrialSpec;
pub use protocol::{parse_line, Line, Message};
pub use queue::QueueController;
pub use scheduler::{
    ctrl_c, interrupt, leave_signals_to_host, run, Controller, Directive, Dispatch, Next, Outcome,
    SchedulerConfig, StopLevel, Summary, TrialReport,
};
