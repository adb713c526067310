use clap::Parser;

#[global_allocator]
static ALLOCATOR: amsplay::memory::Allocator = amsplay::memory::Allocator;

fn main() -> std::process::ExitCode {
    amsplay::cli::init_tracing();
    amsplay::cli::run(amsplay::cli::Cli::parse())
}
