//! `trythis-relay`: the two ends of a visitor's terminal, one static binary (musl) that runs on
//! the host and, mounted read-only, in any image.
//!
//! - `attach ENGINE DIR CONTAINER [watch]` (host, run by ttyd per terminal): joins the shell's
//!   session holder, starting it first when none runs (`watch`: only joins, never sizes).
//! - `hold ENGINE DIR CONTAINER COLS ROWS` (host, started by `attach`): owns the shell's engine
//!   exec with a TTY and its recent output, outliving the app server (`session.rs`).
//! - `with-parent PROGRAM ARGS…` (host): runs PROGRAM so that it dies with its parent (the app
//!   server starts ttyd this way: a killed server leaves no terminals behind).
//! - `shell COLS ROWS TOKEN`, `hangup TOKEN`, `idle` (in the sandbox, `inside.rs`).
//! - `forward PORT`, `ports [watch]` (in the sandbox, `forward.rs`): web previews.
//! - `put PATH SIZE`, `get PATH` (in the sandbox, `files.rs`): files in and out.
mod attach;
mod engine;
mod files;
mod forward;
mod inside;
mod session;

/// Where the server mounts this binary in every sandbox.
pub const RELAY_IN_CONTAINER: &str = "/opt/trythis/relay";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let code = match args.as_slice() {
        ["attach", engine, dir, container] => attach::run(engine, dir, container, false),
        ["attach", engine, dir, container, "watch"] => attach::run(engine, dir, container, true),
        ["hold", engine, dir, container, cols, rows] => {
            session::hold(engine, dir, container, cols, rows)
        }
        ["with-parent", program, rest @ ..] => with_parent(program, rest),
        ["shell", cols, rows, token] => inside::shell(cols, rows, token),
        ["hangup", token] => inside::hangup(token),
        ["idle"] => inside::idle(),
        ["forward", port] => forward::forward(port),
        ["ports"] => forward::ports(false),
        ["ports", "watch"] => forward::ports(true),
        ["put", path, size] => files::put(path, size),
        ["get", path] => files::get(path),
        _ => {
            eprintln!(
                "usage: trythis-relay attach ENGINE DIR CONTAINER [watch] | hold ENGINE DIR CONTAINER COLS ROWS | with-parent PROGRAM ARGS… | shell COLS ROWS TOKEN | hangup TOKEN | idle | forward PORT | ports [watch] | put PATH SIZE | get PATH"
            );
            2
        }
    };
    std::process::exit(code);
}

fn with_parent(program: &str, args: &[&str]) -> i32 {
    use std::os::unix::process::CommandExt;
    let parent = rustix::process::getppid();
    if let Err(e) =
        rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))
    {
        eprintln!("trythis-relay: prctl: {e}");
        return 1;
    }
    // The parent may have died before the signal was armed.
    if rustix::process::getppid() != parent {
        return 1;
    }
    let e = std::process::Command::new(program).args(args).exec();
    eprintln!("trythis-relay: {program}: {e}");
    127
}
