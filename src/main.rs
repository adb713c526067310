use clap::Parser;

fn main() -> std::process::ExitCode {
    amsplay::cli::init_tracing();
    amsplay::cli::run(amsplay::cli::Cli::parse())
}
