//! `yiwangctl`: the operator's command line (see `control_plane::cli`, or `yiwangctl --help`).

fn main() -> std::process::ExitCode {
    control_plane::cli::main()
}
