//! `study report`: tables and figures of a study into `<study>/report/`
//! (see [`crate::report`]). Reads the database read-only, so it works while
//! `study run` writes and on interrupted studies.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use crate::report::collect::StudyData;
use crate::report::document::{write_report, Format, ReportOptions};

/// Write a study's tables (Markdown, CSV, LaTeX) and figures (PNG, SVG).
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The study's name (its folder in the results folder), or the path of
    /// that folder; optional when the results folder holds one study.
    pub study: Option<String>,
    /// Results folder the study ran in.
    #[arg(long, value_name = "DIR", default_value = "results")]
    pub results: PathBuf,
    /// Folder of the report [default: <results>/<study>/report].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Table formats to write (comma-separated); figures are always drawn
    /// unless --no-figures.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [Format::Md, Format::Csv, Format::Latex])]
    pub format: Vec<Format>,
    /// Skip the figures.
    #[arg(long)]
    pub no_figures: bool,
}

pub fn run(args: ReportArgs) -> Result<()> {
    let dir = crate::study::study_folder(&args.results, args.study.as_deref())?;
    let data = StudyData::load(&dir)?;
    let out = args.out.unwrap_or_else(|| dir.join("report"));
    let options = ReportOptions { formats: args.format, figures: !args.no_figures };
    let written = write_report(&data, &out, &options)?;
    let main = out.join("report.md");
    println!(
        "report of {}: {} files in {} ({} figures drawn, {} skipped){}",
        data.info.name,
        written.files.len(),
        written.dir.display(),
        written.figures_drawn,
        written.figures_skipped,
        if main.is_file() { format!("; start with {}", main.display()) } else { String::new() }
    );
    Ok(())
}
