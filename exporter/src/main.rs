//! `vstats-exporter`: see the crate's library documentation.

fn main() -> std::process::ExitCode {
    vstats_exporter::cli::main()
}
