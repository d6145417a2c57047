//! The `study` command line: one file per subcommand.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub(crate) mod ask;
pub(crate) mod data;
pub(crate) mod doctor;
pub(crate) mod export;
pub(crate) mod import;
pub(crate) mod job_host;
pub(crate) mod predict;
pub(crate) mod report;
pub(crate) mod run;
pub(crate) mod screen;
pub(crate) mod status;
pub(crate) mod stop;
pub(crate) mod submit;
pub(crate) mod train;
pub(crate) mod trial;

/// Hyperparameter studies of equivariant GNNs for the dielectric tensor of crystals.
#[derive(Debug, Parser)]
#[command(name = "study", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run (or resume) a study file: trials on the machine's devices, results in SQLite.
    Run(run::RunArgs),
    /// Submit a study as a Slurm batch job (requeued on pre-emption, resumed where it stopped).
    Submit(submit::SubmitArgs),
    /// Ask for trials of a study whose trials an outside driver runs (`executor: external`); prints JSON lines.
    Ask(ask::AskArgs),
    /// Tell a result, an intermediate value or a failure of a trial `study ask` handed out.
    Tell(ask::TellArgs),
    /// Show a study's trials by state, the best trial, an ETA and device use.
    Status(status::StatusArgs),
    /// Cancel the Slurm jobs of a study's trials (`executor: slurm-jobs`), which outlive its controller.
    Stop(stop::StopArgs),
    /// Export a study's trials as CSV or JSON, or as an Optuna storage.
    Export(export::ExportArgs),
    /// Seed a study with the trials of an Optuna study, to continue it with `study run`.
    Import(import::ImportArgs),
    /// Write a study's tables (Markdown, CSV, LaTeX) and figures into <study>/report/.
    Report(report::ReportArgs),
    /// Inspect dielectric data sets and write the synthetic one.
    Data(data::DataArgs),
    /// Train one AnisoNet and print a JSON summary (defaults: the published optimum).
    Train(Box<train::TrainArgs>),
    /// Predict ε∞ of structures with a trained checkpoint or a study's trial.
    Predict(predict::PredictArgs),
    /// Rank structures by the predictions of a study's best models (an ensemble).
    Screen(screen::ScreenArgs),
    /// Check a compute device (e.g. cuda:0): parity with the CPU network, equivariance, throughput.
    Doctor(doctor::DoctorArgs),
    /// Internal: one trial of the built-in objective, as `study run` launches it.
    #[command(hide = true)]
    Trial(trial::TrialArgs),
    /// Internal: a trial inside its Slurm batch job (`executor: slurm-jobs`).
    #[command(hide = true)]
    JobHost(job_host::JobHostArgs),
}

/// Parses the arguments, runs the subcommand and maps errors to exit codes
/// (2 = bad input, 1 = runtime fault).
pub fn main() -> ExitCode {
    ExitCode::from(main_with(std::env::args_os()))
}

/// [`main`] over `args` (the program name first), returning the exit code:
/// the `study` command of an embedding (the Python package's).
pub fn main_with<I, T>(args: I) -> u8
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(err) => {
            // Help and version go to stdout with 0, usage errors to stderr with 2.
            let _ = err.print();
            return err.exit_code().clamp(0, 255) as u8;
        }
    };
    match dispatch(cli.command) {
        Ok(()) => 0,
        Err(err) => {
            eprintln!("error: {err:#}");
            crate::error::exit_code(&err)
        }
    }
}

/// Runs the command line `args` (without the program name) as `study`
/// would, for embedding the tool (the Python package's `run` and
/// `screen`); arguments it does not understand are bad input.
pub fn run_args<I, T>(args: I) -> anyhow::Result<()>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let args = std::iter::once(std::ffi::OsString::from("study")).chain(args.into_iter().map(Into::into));
    let cli = Cli::try_parse_from(args).map_err(|err| {
        let text = err.render().to_string();
        let problem = text.trim_start_matches("error: ").lines().next().unwrap_or("").to_owned();
        crate::error::InputError::new("arguments", problem)
            .with_hint("see `study --help` for every command and option")
    })?;
    dispatch(cli.command)
}

fn dispatch(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Run(args) => run::run(args),
        Command::Submit(args) => submit::run(args),
        Command::Ask(args) => ask::ask(args),
        Command::Tell(args) => ask::tell(args),
        Command::Status(args) => status::run(args),
        Command::Stop(args) => stop::run(args),
        Command::Export(args) => export::run(args),
        Command::Import(args) => import::run(args),
        Command::Report(args) => report::run(args),
        Command::Trial(args) => trial::run(args),
        Command::JobHost(args) => {
            let code = job_host::run(&args)?;
            std::process::exit(code.into())
        }
        Command::Data(args) => data::run(args),
        Command::Train(args) => train::run(*args),
        Command::Predict(args) => predict::run(args),
        Command::Screen(args) => screen::run(args),
        Command::Doctor(args) => doctor::run(args),
    }
}
