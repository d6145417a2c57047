//! The device pool: the slots trials run in.
//!
//! A slot is one place for one trial: a GPU (or a share of one, with
//! `trials_per_device`), or a group of CPU threads. A trial learns its slot
//! through its environment: `CUDA_VISIBLE_DEVICES` holds its GPU (empty on
//! CPU slots, so a CPU trial never grabs a GPU) and `OMP_NUM_THREADS`,
//! `RAYON_NUM_THREADS`, `MKL_NUM_THREADS` and `ANISOSTUDY_THREADS` its
//! thread count.
//!
//! `auto` picks the GPUs when the binary is built with the `cuda` feature
//! and GPUs are found, else CPU slots. GPUs are found from
//! `CUDA_VISIBLE_DEVICES` when it is set (its comma-separated entries; empty
//! or `-1` means none), else from the `GPU n:` lines of `nvidia-smi -L`.

use std::fmt;

/// One compute device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Device {
    Cpu,
    /// A CUDA device by its id (an index, or a `GPU-…` UUID), as
    /// `CUDA_VISIBLE_DEVICES` names it.
    Cuda(String),
    /// The GPU engine on its CPU emulation: what a GPU's trials run,
    /// sharing included, on a machine without one (for checks: it is slow).
    GpuEmulated,
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Cpu => f.write_str("cpu"),
            Device::Cuda(id) => write!(f, "cuda:{id}"),
            Device::GpuEmulated => f.write_str("gpu-emulated"),
        }
    }
}

/// Parses `cpu`, `cuda:0`, `cuda:GPU-…` or `gpu-emulated`.
pub fn parse_device(text: &str) -> Result<Device, String> {
    let text = text.trim();
    match text {
        "cpu" => return Ok(Device::Cpu),
        "gpu-emulated" => return Ok(Device::GpuEmulated),
        _ => {}
    }
    match text.strip_prefix("cuda:") {
        Some(id) if id.parse::<u32>().is_ok() || (id.starts_with("GPU-") && id.len() > 4) => {
            Ok(Device::Cuda(id.to_owned()))
        }
        Some(id) => Err(format!("`{id}` in `{text}` is not a CUDA device index")),
        None if text == "cuda" || text == "gpu" => Err(format!("`{text}` needs a device index, e.g. cuda:0")),
        None => Err(format!("`{text}` is not a device")),
    }
}

/// What the study file asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum DeviceRequest {
    Auto,
    Cpu,
    List(Vec<Device>),
}

/// The device settings of a study.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolSpec {
    pub request: DeviceRequest,
    /// Trials per device; default 1 per GPU and cores / threads for the CPU.
    pub trials_per_device: Option<u32>,
    pub cpu_threads_per_trial: u32,
}

/// One place to run one trial.
#[derive(Debug, Clone, PartialEq)]
pub struct Slot {
    /// Position in the pool, from 0.
    pub index: usize,
    pub device: Device,
    /// CPU threads the trial may use.
    pub threads: u32,
    /// The node the slot is on, for an executor that spreads trials over
    /// several machines; `None` on this machine.
    pub host: Option<String>,
    /// The device as the trial's own process names it (`{device}`,
    /// `ANISOSTUDY_DEVICE`): `device` on this machine; `cuda:0` in a Slurm
    /// job step, whose GPUs CUDA numbers from 0 whichever of the node's
    /// they are.
    pub seen_as: Device,
}

impl Slot {
    /// `cuda:1`, `cpu:3` (CPU slots by index), `n2/cuda:0` on another node.
    pub fn label(&self) -> String {
        let device = match &self.device {
            Device::Cpu => format!("cpu:{}", self.index),
            cuda => cuda.to_string(),
        };
        match &self.host {
            Some(host) => format!("{host}/{device}"),
            None => device,
        }
    }

    /// Environment variables that pin a trial to this slot.
    pub fn env(&self) -> Vec<(String, String)> {
        let gpu = match &self.device {
            Device::Cpu | Device::GpuEmulated => String::new(),
            Device::Cuda(id) => id.clone(),
        };
        let threads = self.threads.to_string();
        let mut env = vec![("CUDA_VISIBLE_DEVICES".to_owned(), gpu)];
        for key in ["OMP_NUM_THREADS", "RAYON_NUM_THREADS", "MKL_NUM_THREADS", "ANISOSTUDY_THREADS"] {
            env.push((key.to_owned(), threads.clone()));
        }
        env.push(("ANISOSTUDY_DEVICE".to_owned(), self.seen_as.to_string()));
        env
    }
}

/// What the machine offers.
#[derive(Debug, Clone, PartialEq)]
pub struct Machine {
    pub cpu_cores: usize,
    /// Visible CUDA devices.
    pub gpus: Vec<String>,
    /// Whether this build can train on CUDA.
    pub cuda_build: bool,
}

impl Machine {
    /// Looks at this machine (see the module docs for how GPUs are found).
    pub fn detect() -> Self {
        let cpu_cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self { cpu_cores, gpus: detect_gpus(), cuda_build: cfg!(feature = "cuda") }
    }
}

/// Visible CUDA devices: `CUDA_VISIBLE_DEVICES` when set, else `nvidia-smi -L`.
pub fn detect_gpus() -> Vec<String> {
    match std::env::var("CUDA_VISIBLE_DEVICES") {
        Ok(list) => parse_visible_devices(&list),
        Err(_) => std::process::Command::new("nvidia-smi")
            .arg("-L")
            .output()
            .ok()
            .filter(|out| out.status.success())
            .map(|out| parse_nvidia_smi(&String::from_utf8_lossy(&out.stdout)))
            .unwrap_or_default(),
    }
}

/// Entries of `CUDA_VISIBLE_DEVICES`; CUDA stops at the first invalid one (`-1`).
pub fn parse_visible_devices(list: &str) -> Vec<String> {
    list.split(',')
        .map(str::trim)
        .take_while(|id| !id.is_empty() && !id.starts_with('-'))
        .map(str::to_owned)
        .collect()
}

/// Indices of the `GPU n: …` lines of `nvidia-smi -L`.
pub fn parse_nvidia_smi(output: &str) -> Vec<String> {
    output
        .lines()
        .filter_map(|line| line.strip_prefix("GPU ")?.split(':').next()?.trim().parse::<u32>().ok())
        .map(|i| i.to_string())
        .collect()
}

/// The slots for `spec` on `machine`.
pub fn build_pool(spec: &PoolSpec, machine: &Machine) -> Vec<Slot> {
    let threads = spec.cpu_threads_per_trial.max(1);
    let per_gpu = spec.trials_per_device.unwrap_or(1).max(1) as usize;
    let cpu_slots =
        spec.trials_per_device.map_or((machine.cpu_cores / threads as usize).max(1), |n| n.max(1) as usize);
    let gpus: Vec<Device> = machine.gpus.iter().map(|id| Device::Cuda(id.clone())).collect();
    let devices: Vec<(Device, usize)> = match &spec.request {
        DeviceRequest::Auto if machine.cuda_build && !gpus.is_empty() => {
            gpus.into_iter().map(|d| (d, per_gpu)).collect()
        }
        DeviceRequest::Auto | DeviceRequest::Cpu => vec![(Device::Cpu, cpu_slots)],
        DeviceRequest::List(list) => {
            list.iter().map(|d| (d.clone(), if *d == Device::Cpu { cpu_slots } else { per_gpu })).collect()
        }
    };
    let mut slots = Vec::new();
    for (device, count) in devices {
        for _ in 0..count {
            slots.push(Slot {
                index: slots.len(),
                device: device.clone(),
                threads,
                host: None,
                seen_as: device.clone(),
            });
        }
    }
    slots
}

#[cfg(test)]
mod tests {
    use super::*;

    fn machine(cores: usize, gpus: &[&str], cuda_build: bool) -> Machine {
        Machine { cpu_cores: cores, gpus: gpus.iter().map(|s| s.to_string()).collect(), cuda_build }
    }

    fn spec(request: DeviceRequest, per_device: Option<u32>, threads: u32) -> PoolSpec {
        PoolSpec { request, trials_per_device: per_device, cpu_threads_per_trial: threads }
    }

    #[test]
    fn parses_devices() {
        assert_eq!(parse_device("cpu"), Ok(Device::Cpu));
        assert_eq!(parse_device("cuda:1"), Ok(Device::Cuda("1".into())));
        assert!(parse_device("cuda").unwrap_err().contains("needs a device index"));
        assert!(parse_device("cuda:x").is_err());
        assert!(parse_device("tpu:0").is_err());
    }

    #[test]
    fn cpu_slots_are_cores_over_threads() {
        let slots = build_pool(&spec(DeviceRequest::Cpu, None, 2), &machine(8, &[], false));
        assert_eq!(slots.len(), 4);
        assert!(slots.iter().all(|s| s.threads == 2 && s.device == Device::Cpu));
        let slots = build_pool(&spec(DeviceRequest::Cpu, None, 4), &machine(2, &[], false));
        assert_eq!(slots.len(), 1);
        let slots = build_pool(&spec(DeviceRequest::Cpu, Some(4), 1), &machine(2, &[], false));
        assert_eq!(slots.len(), 4);
    }

    #[test]
    fn auto_uses_gpus_only_in_a_cuda_build() {
        let m = machine(16, &["0", "1"], true);
        let slots = build_pool(&spec(DeviceRequest::Auto, None, 1), &m);
        assert_eq!(slots.iter().map(|s| s.device.to_string()).collect::<Vec<_>>(), ["cuda:0", "cuda:1"]);
        let shared = build_pool(&spec(DeviceRequest::Auto, Some(2), 1), &m);
        assert_eq!(shared.len(), 4);
        let cpu = build_pool(&spec(DeviceRequest::Auto, None, 4), &machine(16, &["0"], false));
        assert_eq!(cpu.len(), 4);
        assert_eq!(cpu[0].env()[0], ("CUDA_VISIBLE_DEVICES".to_owned(), String::new()));
    }

    #[test]
    fn reads_visible_devices_and_nvidia_smi() {
        assert_eq!(parse_visible_devices("2, 3"), ["2", "3"]);
        assert!(parse_visible_devices("").is_empty());
        assert!(parse_visible_devices("-1").is_empty());
        let smi = "GPU 0: NVIDIA H100 (UUID: GPU-abc)\nGPU 1: NVIDIA H100 (UUID: GPU-def)\n";
        assert_eq!(parse_nvidia_smi(smi), ["0", "1"]);
    }
}
