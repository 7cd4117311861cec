//! The per-container shim as a standalone binary (see `maestro_oci::runtime::shim`); the agent
//! binary runs the same code as a subcommand.

fn main() {
    std::process::exit(maestro_oci::runtime::shim::main(
        std::env::args_os().skip(1),
    ));
}
