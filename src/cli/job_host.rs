//! `study job-host --dir DIR -- PROGRAM ARGS…` (internal): what a trial's
//! Slurm batch job runs (`executor: slurm-jobs`); see
//! [`crate::exec::slurm::host`].

use std::path::PathBuf;

use clap::Args;

/// Run a trial inside its Slurm job, its output into its folder.
#[derive(Debug, Args)]
pub struct JobHostArgs {
    /// The trial's folder, on the file system the controller shares.
    #[arg(long)]
    pub dir: PathBuf,
    /// The trial's program and its arguments.
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
}

/// The trial's exit code.
pub fn run(args: &JobHostArgs) -> anyhow::Result<u8> {
    let (program, rest) = args.command.split_first().expect("clap requires the command");
    let code = crate::exec::slurm::host::host_trial(&args.dir, program, rest)?;
    Ok(code.clamp(0, 255) as u8)
}
