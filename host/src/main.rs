//! The `ha-host` binary (protocol and options: see the library's crate documentation,
//! `host/src/lib.rs`, and `ha-host --help`).

fn main() {
    ha_host::cli::main_with_args(std::env::args_os());
}
