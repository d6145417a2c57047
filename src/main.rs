use std::process::ExitCode;

fn main() -> ExitCode {
    anisostudy::cli::main()
}
