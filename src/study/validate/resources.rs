//! `resources`: devices, threads, timeouts and the executor.

use std::time::Duration;

use super::Checker;
use crate::error::InputError;
use crate::exec::devices::{parse_device, DeviceRequest, PoolSpec};
use crate::exec::slurm::{JobsRequest, StepRequest};
use crate::study::file::{DevicesSpec, ExecutorKind, ResourcesSpec};

/// What a study's trials ask Slurm for, by executor.
#[derive(Debug, Clone, PartialEq)]
pub enum SlurmPlan {
    /// Not run by Slurm (`local`, `external`).
    None,
    /// Job steps of an allocation (`executor: slurm`).
    Steps(StepRequest),
    /// A batch job per trial (`executor: slurm-jobs`).
    Jobs(JobsRequest),
}

impl Checker<'_> {
    /// `resources.executor` and `resources.slurm`.
    pub(super) fn executor(&self, r: &ResourcesSpec) -> Result<SlurmPlan, InputError> {
        match (r.executor, &r.slurm) {
            (ExecutorKind::Local, None) => Ok(SlurmPlan::None),
            (ExecutorKind::Local | ExecutorKind::External, Some(_)) => Err(self
                .err("resources.slurm", "Slurm settings, but the executor is not `slurm` or `slurm-jobs`")
                .with_hint("add `executor: slurm` (or `slurm-jobs`) to resources, or remove `slurm:`")),
            (ExecutorKind::External, None) => {
                if r.trials_per_device.is_some() {
                    return Err(self
                        .err("resources.trials_per_device", "an external driver places its trials itself")
                        .with_hint(
                            "remove trials_per_device; run as many trials at once as the driver's jobs",
                        ));
                }
                if let DevicesSpec::List(list) = &r.devices {
                    if list.len() > 1 {
                        return Err(self
                            .err("resources.devices", "an external driver's trial uses one device")
                            .with_hint("name the device a trial's job sees, e.g. [cuda:0], or write `cpu`"));
                    }
                }
                Ok(SlurmPlan::None)
            }
            (ExecutorKind::SlurmJobs, spec) => {
                let spec = spec.clone().unwrap_or_default();
                if r.trials_per_device.is_some_and(|n| n > 1) && spec.gpus_per_trial != Some(0) {
                    return Err(self
                        .err("resources.trials_per_device", "GPUs are not shared between trial jobs")
                        .with_hint(
                            "Slurm gives each trial's job GPUs of its own; to share one GPU between k trials \
                             write `slurm: {trials_per_gpu: k}` (Slurm's GPU shards), or set \
                             `slurm: {gpus_per_trial: 0}` for CPU trials",
                        ));
                }
                spec.validate_jobs(r.cpu_threads_per_trial)
                    .map(SlurmPlan::Jobs)
                    .map_err(|(key, problem, hint)| self.err(&key, problem).with_hint(hint))
            }
            (ExecutorKind::Slurm, spec) => {
                let spec = spec.clone().unwrap_or_default();
                if r.trials_per_device.is_some_and(|n| n > 1) && spec.gpus_per_trial != Some(0) {
                    return Err(self
                        .err("resources.trials_per_device", "GPUs cannot be shared with `executor: slurm`")
                        .with_hint(
                            "Slurm gives each job step GPUs of its own; to share one GPU between k trials \
                             write `slurm: {trials_per_gpu: k}`, or set `slurm: {gpus_per_trial: 0}` for CPU trials",
                        ));
                }
                spec.validate(r.cpu_threads_per_trial)
                    .map(SlurmPlan::Steps)
                    .map_err(|(key, problem, hint)| self.err(&key, problem).with_hint(hint))
            }
        }
    }

    pub(super) fn resources(&self, r: &ResourcesSpec) -> Result<(PoolSpec, Option<Duration>), InputError> {
        let devices_hint = "write `auto`, `cpu` or a list such as [cuda:0, cuda:1]";
        let request = match &r.devices {
            DevicesSpec::Named(name) if name == "auto" => DeviceRequest::Auto,
            DevicesSpec::Named(name) if name == "cpu" => DeviceRequest::Cpu,
            DevicesSpec::Named(name) => {
                return Err(self
                    .err("resources.devices", format!("`{name}` is not a device setting"))
                    .with_hint(devices_hint))
            }
            DevicesSpec::List(list) => {
                if list.is_empty() {
                    return Err(self
                        .err("resources.devices", "the device list is empty")
                        .with_hint(devices_hint));
                }
                let mut devices = Vec::new();
                for (i, text) in list.iter().enumerate() {
                    let device = parse_device(text).map_err(|problem| {
                        self.err(&format!("resources.devices[{i}]"), problem).with_hint(devices_hint)
                    })?;
                    if devices.contains(&device) {
                        return Err(self
                            .err(&format!("resources.devices[{i}]"), format!("`{text}` is listed twice"))
                            .with_hint("use trials_per_device to run several trials on one device"));
                    }
                    devices.push(device);
                }
                DeviceRequest::List(devices)
            }
        };
        if r.cpu_threads_per_trial == 0 {
            return Err(self.err("resources.cpu_threads_per_trial", "must be at least 1"));
        }
        if r.trials_per_device == Some(0) {
            return Err(self.err("resources.trials_per_device", "must be at least 1"));
        }
        let timeout = match &r.trial_timeout {
            None => None,
            Some(spec) => Some(Duration::from_secs_f64(spec.seconds().map_err(|problem| {
                self.err("resources.trial_timeout", problem).with_hint("e.g. `3600`, `90s`, `30m` or `2h`")
            })?)),
        };
        let pool = PoolSpec {
            request,
            trials_per_device: r.trials_per_device,
            cpu_threads_per_trial: r.cpu_threads_per_trial,
        };
        Ok((pool, timeout))
    }
}
