//! `resources.slurm` of a study file: what one trial asks for, as a job
//! step (`executor: slurm`) or as a batch job of its own (`executor:
//! slurm-jobs`), checked before anything runs, and Slurm's ways of writing
//! times and sizes.

use serde::{Deserialize, Serialize};

/// `resources.slurm` of a study file: what one trial's job step (or batch
/// job) asks for.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SlurmSpec {
    /// GPUs per trial; default 1 when the allocation's nodes have GPUs, else 0.
    pub gpus_per_trial: Option<u32>,
    /// CPUs per trial; default `resources.cpu_threads_per_trial`.
    pub cpus_per_trial: Option<u32>,
    /// Memory per trial as Slurm writes it (`16G`, `4000M`); default `0`:
    /// the steps of a node share the job's memory there.
    pub mem_per_trial: Option<String>,
    /// Time limit of one step as Slurm writes it (`90`, `1:30:00`, `1-12`).
    pub time_per_trial: Option<String>,
    /// Longest wait for a trial's job step to start, as a Slurm time
    /// (default 10 minutes); a step still waiting then is cancelled and
    /// the attempt fails (and is retried where `retries` allow).
    pub start_limit: Option<String>,
    /// Extra `srun` arguments, passed as they are (`executor: slurm`).
    pub srun_args: Vec<String>,
    /// The partition, account, QOS and node features of each trial's batch
    /// job (`executor: slurm-jobs`); default the cluster's.
    pub partition: Option<String>,
    pub account: Option<String>,
    pub qos: Option<String>,
    pub constraint: Option<String>,
    /// Extra `sbatch` arguments of each trial's job, passed as they are
    /// (`executor: slurm-jobs`).
    pub sbatch_args: Vec<String>,
    /// Trial jobs queued or running at once (`executor: slurm-jobs`): the
    /// study's parallelism; default [`DEFAULT_MAX_JOBS`].
    pub max_jobs: Option<u32>,
    /// Trials sharing one GPU, through Slurm's GPU sharding (`gres/shard`):
    /// each trial asks for its share of a GPU's shards; default 1.
    pub trials_per_gpu: Option<u32>,
}

/// The default of `resources.slurm.max_jobs`.
pub const DEFAULT_MAX_JOBS: u32 = 4;

/// A validated [`SlurmSpec`] for `executor: slurm-jobs`: what each trial's
/// batch job asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct JobsRequest {
    /// GPUs, CPUs, memory and time of one trial (its `srun_args` are empty).
    pub trial: StepRequest,
    /// Seconds a trial's job may stay pending; `None` (the default): as
    /// long as the queue keeps it.
    pub start_limit: Option<u64>,
    pub partition: Option<String>,
    pub account: Option<String>,
    pub qos: Option<String>,
    pub constraint: Option<String>,
    pub sbatch_args: Vec<String>,
    pub max_jobs: u32,
}

/// Options of a trial's resources, which both Slurm executors set from
/// `resources.slurm`, with the key to use instead.
const TRIAL_OPTIONS: &[(&str, &str)] = &[
    ("--nodes", "each trial runs on one node"),
    ("-N", "each trial runs on one node"),
    ("--ntasks", "each trial is one task"),
    ("-n", "each trial is one task"),
    ("--gres", "use resources.slurm.gpus_per_trial, or trials_per_gpu for a share of one"),
    ("--gpus", "use resources.slurm.gpus_per_trial"),
    ("-G", "use resources.slurm.gpus_per_trial"),
    ("--gpus-per-task", "use resources.slurm.gpus_per_trial"),
    ("--gpus-per-node", "use resources.slurm.gpus_per_trial"),
    ("--cpus-per-task", "use resources.slurm.cpus_per_trial"),
    ("-c", "use resources.slurm.cpus_per_trial"),
    ("--mem", "use resources.slurm.mem_per_trial"),
    ("--mem-per-cpu", "use resources.slurm.mem_per_trial"),
    ("--mem-per-gpu", "use resources.slurm.mem_per_trial"),
    ("--time", "use resources.slurm.time_per_trial"),
    ("-t", "use resources.slurm.time_per_trial"),
    ("--export", "the executor passes --export=ALL, so the trial's variables reach it"),
    ("--job-name", "the executor names steps and jobs after their trials, to find them again"),
    ("-J", "the executor names steps and jobs after their trials, to find them again"),
];

/// srun options only the job-step executor sets.
const OWN_STEP_OPTIONS: &[(&str, &str)] = &[
    ("--nodelist", "the executor pins each step to one node"),
    ("-w", "the executor pins each step to one node"),
    ("--overlap", "it lets steps share GPUs; use resources.slurm.trials_per_gpu"),
    ("--jobid", "the executor runs steps in its own allocation"),
];

/// sbatch options only the trial-jobs executor sets.
const OWN_JOB_OPTIONS: &[(&str, &str)] = &[
    ("--partition", "use resources.slurm.partition"),
    ("-p", "use resources.slurm.partition"),
    ("--account", "use resources.slurm.account"),
    ("-A", "use resources.slurm.account"),
    ("--qos", "use resources.slurm.qos"),
    ("-q", "use resources.slurm.qos"),
    ("--constraint", "use resources.slurm.constraint"),
    ("-C", "use resources.slurm.constraint"),
    ("--output", "the trial's output goes to its folder"),
    ("-o", "the trial's output goes to its folder"),
    ("--error", "the trial's stderr goes to its log"),
    ("-e", "the trial's stderr goes to its log"),
    ("--open-mode", "the trial's logs are appended to"),
    ("--chdir", "the trial runs where the study says"),
    ("-D", "the trial runs where the study says"),
    ("--requeue", "trial jobs are requeued on pre-emption"),
    ("--no-requeue", "trial jobs are requeued on pre-emption"),
    ("--signal", "the executor asks trials to checkpoint before their time limit"),
    ("--array", "the executor submits each trial's job"),
    ("-a", "the executor submits each trial's job"),
    ("--wait", "the controller follows its jobs itself"),
    ("-W", "the controller follows its jobs itself"),
    ("--parsable", "the executor reads sbatch's answer"),
];

/// The default of `resources.slurm.start_limit`, in seconds.
pub const DEFAULT_START_LIMIT: u64 = 600;

/// A validated [`SlurmSpec`].
#[derive(Debug, Clone, PartialEq)]
pub struct StepRequest {
    pub gpus_per_trial: Option<u32>,
    pub cpus_per_trial: u32,
    pub mem_per_trial: Option<String>,
    pub time_per_trial: Option<String>,
    /// Seconds.
    pub start_limit: u64,
    pub srun_args: Vec<String>,
    /// Trials sharing one GPU (≥ 1; above 1, each trial has one GPU's share).
    pub trials_per_gpu: u32,
}

impl SlurmSpec {
    /// Checks the keys; `key` prefixes the names in errors (`resources.slurm`).
    pub fn validate(&self, cpu_threads_per_trial: u32) -> Result<StepRequest, (String, String, String)> {
        let err =
            |k: &str, problem: String, hint: &str| (format!("resources.slurm.{k}"), problem, hint.to_owned());
        if self.cpus_per_trial == Some(0) {
            return Err(err("cpus_per_trial", "must be at least 1".into(), "e.g. `cpus_per_trial: 4`"));
        }
        if let Some(mem) = &self.mem_per_trial {
            let digits = mem.trim_end_matches(['K', 'M', 'G', 'T']);
            if digits.is_empty()
                || !digits.chars().all(|c| c.is_ascii_digit())
                || mem.len() - digits.len() > 1
            {
                return Err(err(
                    "mem_per_trial",
                    format!("`{mem}` is not a memory size"),
                    "write it as Slurm does: a number with an optional K, M, G or T suffix, e.g. `16G`",
                ));
            }
        }
        if let Some(time) = &self.time_per_trial {
            if parse_time(time).is_none() {
                return Err(err(
                    "time_per_trial",
                    format!("`{time}` is not a Slurm time"),
                    "write minutes (`90`), `MM:SS`, `HH:MM:SS`, `D-HH`, `D-HH:MM` or `D-HH:MM:SS`",
                ));
            }
        }
        let start_limit = match &self.start_limit {
            None => DEFAULT_START_LIMIT,
            Some(time) => match parse_time(time) {
                Some(seconds) if seconds > 0 => seconds,
                _ => {
                    return Err(err(
                        "start_limit",
                        format!("`{time}` is not a Slurm time of at least a second"),
                        "write minutes (`10`), `MM:SS` (`0:30`) or `HH:MM:SS`",
                    ))
                }
            },
        };
        let trials_per_gpu = self.trials_per_gpu.unwrap_or(1);
        if trials_per_gpu == 0 {
            return Err(err("trials_per_gpu", "must be at least 1".into(), "e.g. `trials_per_gpu: 4`"));
        }
        if trials_per_gpu > 1 && self.gpus_per_trial.is_some_and(|g| g != 1) {
            return Err(err(
                "gpus_per_trial",
                format!(
                    "{} GPUs per trial, but with trials_per_gpu {trials_per_gpu} each trial has a share of one GPU",
                    self.gpus_per_trial.unwrap_or_default()
                ),
                "remove gpus_per_trial (or set it to 1), or remove trials_per_gpu",
            ));
        }
        own_option("srun_args", &self.srun_args, &[TRIAL_OPTIONS, OWN_STEP_OPTIONS])?;
        let jobs_only = [
            ("partition", self.partition.is_some()),
            ("account", self.account.is_some()),
            ("qos", self.qos.is_some()),
            ("constraint", self.constraint.is_some()),
            ("sbatch_args", !self.sbatch_args.is_empty()),
            ("max_jobs", self.max_jobs.is_some()),
        ];
        if let Some((key, _)) = jobs_only.iter().find(|(_, set)| *set) {
            return Err(err(
                key,
                "is a setting of trial jobs, but `executor: slurm` runs trials as job steps of one allocation".into(),
                "use `executor: slurm-jobs` for a batch job per trial, or remove the key \
                 (the allocation's own partition and account are those of `study submit`)",
            ));
        }
        Ok(StepRequest {
            gpus_per_trial: self.gpus_per_trial,
            cpus_per_trial: self.cpus_per_trial.unwrap_or(cpu_threads_per_trial).max(1),
            mem_per_trial: self.mem_per_trial.clone(),
            time_per_trial: self.time_per_trial.clone(),
            start_limit,
            srun_args: self.srun_args.clone(),
            trials_per_gpu,
        })
    }

    /// Checks the keys for `executor: slurm-jobs`.
    pub fn validate_jobs(&self, cpu_threads_per_trial: u32) -> Result<JobsRequest, (String, String, String)> {
        let err =
            |k: &str, problem: String, hint: &str| (format!("resources.slurm.{k}"), problem, hint.to_owned());
        if !self.srun_args.is_empty() {
            return Err(err(
                "srun_args",
                "is a setting of job steps, but `executor: slurm-jobs` runs each trial as a batch job".into(),
                "pass options of the trial's job in `sbatch_args`",
            ));
        }
        if self.max_jobs == Some(0) {
            return Err(err("max_jobs", "must be at least 1".into(), "e.g. `max_jobs: 8`"));
        }
        own_option("sbatch_args", &self.sbatch_args, &[TRIAL_OPTIONS, OWN_JOB_OPTIONS])?;
        let steps = SlurmSpec { srun_args: Vec::new(), ..SlurmSpec::default() };
        let trial = SlurmSpec {
            gpus_per_trial: self.gpus_per_trial,
            cpus_per_trial: self.cpus_per_trial,
            mem_per_trial: self.mem_per_trial.clone(),
            time_per_trial: self.time_per_trial.clone(),
            start_limit: self.start_limit.clone(),
            trials_per_gpu: self.trials_per_gpu,
            ..steps
        }
        .validate(cpu_threads_per_trial)?;
        let start_limit = self.start_limit.is_some().then_some(trial.start_limit);
        Ok(JobsRequest {
            trial,
            start_limit,
            partition: self.partition.clone(),
            account: self.account.clone(),
            qos: self.qos.clone(),
            constraint: self.constraint.clone(),
            sbatch_args: self.sbatch_args.clone(),
            max_jobs: self.max_jobs.unwrap_or(DEFAULT_MAX_JOBS),
        })
    }
}

/// Refuses an option of `args` (under `key`) that the executor sets itself.
fn own_option(key: &str, args: &[String], own: &[&[(&str, &str)]]) -> Result<(), (String, String, String)> {
    for (i, arg) in args.iter().enumerate() {
        let name = arg.split('=').next().unwrap_or(arg);
        // `-p debug` and `-pdebug`: a short option is its first two characters.
        let short = (name.len() > 2 && !name.starts_with("--")).then(|| &name[..2]);
        let mut options = own.iter().flat_map(|list| list.iter());
        if let Some((_, why)) = options.find(|(option, _)| *option == name || Some(*option) == short) {
            return Err((
                format!("resources.slurm.{key}[{i}]"),
                format!("`{arg}` is set by the executor"),
                format!("remove it: {why}"),
            ));
        }
    }
    Ok(())
}

/// Seconds of a Slurm time: `M`, `M:S`, `H:M:S`, `D-H`, `D-H:M`, `D-H:M:S`.
pub fn parse_time(text: &str) -> Option<u64> {
    let num =
        |s: &str| (!s.is_empty() && s.chars().all(|c| c.is_ascii_digit())).then(|| s.parse::<u64>().ok())?;
    let (days, rest) = match text.split_once('-') {
        Some((d, rest)) => (num(d)?, Some(rest)),
        None => (0, None),
    };
    let parts: Vec<u64> = rest.unwrap_or(text).split(':').map(num).collect::<Option<_>>()?;
    let seconds = match (rest.is_some(), parts.as_slice()) {
        (false, [m]) => m * 60,
        (false, [m, s]) => m * 60 + s,
        (false, [h, m, s]) | (true, [h, m, s]) => h * 3600 + m * 60 + s,
        (true, [h]) => h * 3600,
        (true, [h, m]) => h * 3600 + m * 60,
        _ => return None,
    };
    Some(days * 86400 + seconds)
}

/// Megabytes of a Slurm memory size (`16G`; a bare number is megabytes).
pub(super) fn megabytes(size: &str) -> Option<u64> {
    let (digits, unit) = size.split_at(size.find(|c: char| !c.is_ascii_digit()).unwrap_or(size.len()));
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "" | "M" => n,
        "K" => n.div_ceil(1024),
        "G" => n * 1024,
        "T" => n * 1024 * 1024,
        _ => return None,
    })
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_the_trial_job_request() {
        let bad = |spec: SlurmSpec| spec.validate_jobs(1).unwrap_err();
        let (key, problem, hint) = bad(SlurmSpec {
            sbatch_args: vec!["--exclusive".into(), "-pdebug".into()],
            ..Default::default()
        });
        assert_eq!(key, "resources.slurm.sbatch_args[1]");
        assert!(problem.contains("-pdebug") && hint.contains("resources.slurm.partition"), "{hint}");
        assert_eq!(bad(SlurmSpec { max_jobs: Some(0), ..Default::default() }).0, "resources.slurm.max_jobs");
        assert_eq!(
            bad(SlurmSpec { srun_args: vec!["--exclusive".into()], ..Default::default() }).0,
            "resources.slurm.srun_args"
        );
        let ok = SlurmSpec {
            partition: Some("gpu".into()),
            qos: Some("short".into()),
            mem_per_trial: Some("8G".into()),
            ..Default::default()
        };
        let jobs = ok.validate_jobs(2).unwrap();
        assert_eq!((jobs.max_jobs, jobs.trial.cpus_per_trial, jobs.start_limit), (DEFAULT_MAX_JOBS, 2, None));
        assert_eq!(jobs.partition.as_deref(), Some("gpu"));
        // The keys of trial jobs are refused for job steps, with the executor to use.
        let (key, _, hint) = ok.validate(1).unwrap_err();
        assert_eq!(key, "resources.slurm.partition");
        assert!(hint.contains("slurm-jobs"), "{hint}");
    }

    #[test]
    fn validates_the_step_request() {
        let bad = |spec: SlurmSpec| spec.validate(1).unwrap_err();
        assert_eq!(
            bad(SlurmSpec { mem_per_trial: Some("16GB".into()), ..Default::default() }).0,
            "resources.slurm.mem_per_trial"
        );
        assert_eq!(
            bad(SlurmSpec { time_per_trial: Some("1h".into()), ..Default::default() }).0,
            "resources.slurm.time_per_trial"
        );
        let (key, problem, hint) = bad(SlurmSpec {
            srun_args: vec!["--exclusive".into(), "--gres=gpu:2".into()],
            ..Default::default()
        });
        assert_eq!(key, "resources.slurm.srun_args[1]");
        assert!(problem.contains("--gres=gpu:2") && hint.contains("gpus_per_trial"));
        let ok = SlurmSpec {
            mem_per_trial: Some("4000M".into()),
            time_per_trial: Some("1-12:00".into()),
            ..Default::default()
        };
        assert_eq!(ok.validate(3).unwrap().cpus_per_trial, 3);
        assert_eq!(ok.validate(3).unwrap().start_limit, DEFAULT_START_LIMIT);
        let quick = SlurmSpec { start_limit: Some("0:30".into()), ..Default::default() };
        assert_eq!(quick.validate(1).unwrap().start_limit, 30);
        assert_eq!(
            bad(SlurmSpec { start_limit: Some("0".into()), ..Default::default() }).0,
            "resources.slurm.start_limit"
        );
        assert_eq!(parse_time("90"), Some(5400));
        assert_eq!(parse_time("1:30:00"), Some(5400));
        assert_eq!(parse_time("2-0"), Some(172_800));
        assert_eq!(parse_time("1:2:3:4"), None);
    }
}
