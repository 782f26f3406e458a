//! Terminal conformance: a Try's shell behaves like a Linux terminal, checked through the real
//! server's WebSocket (ttyd's protocol, as the page speaks it), under the default runtime (gVisor)
//! and the fallback (runc in the engine's user namespace, on the build engine, which remaps uids).
//! Each check types what a visitor would and reads the screen. Needs Docker: fails without it.
mod common;
use common::*;
use std::time::Duration;

const T: Duration = Duration::from_secs(30);

/// A server on the runtime under test, a visitor, and the shell of its Try of the fixture.
struct Tried {
    app: TestApp,
    visitor: Visitor,
    id: String,
}

async fn start(runtime: &str) -> Result<Tried> {
    let app = match runtime {
        "gvisor" => TestApp::start_with(&[("TRYTHIS_SANDBOX_RUNTIME", "runsc")]).await?,
        _ => {
            let engine = std::env::var("TRYTHIS_BUILD_ENGINE")
                .unwrap_or_else(|_| "unix:///run/trythis/build-engine.sock".into());
            TestApp::start_with(&[
                ("TRYTHIS_DOCKER_ENDPOINT", &engine),
                ("TRYTHIS_SANDBOX_RUNTIME", "auto"),
            ])
            .await?
        }
    };
    let health: serde_json::Value = reqwest::get(app.url("/healthz")).await?.json().await?;
    let want = if runtime == "gvisor" {
        "runsc"
    } else {
        "runc+userns"
    };
    assert_eq!(health["runtime"], want, "{health}");
    let visitor = app.visitor().await?;
    let r = visitor.try_project("fixture").await?;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let id = r.body["id"].as_str().ok_or("id")?.to_string();
    Ok(Tried { app, visitor, id })
}

impl Tried {
    async fn shell(&self) -> Result<Shell> {
        let mut sh = self
            .visitor
            .terminal(&self.id)
            .await
            .map_err(|s| format!("upgrade: {s}"))?;
        sh.expect(r"[#$] $", T).await?;
        Ok(sh)
    }
}

/// `ls -la /` and `stat` answer without an error on any entry (symlinks included).
async fn ls_and_stat(rt: &str) -> Result {
    let t = start(rt).await?;
    let mut sh = t.shell().await?;
    let out = sh
        .run(
            "ls -la / >/tmp/ls.out 2>/tmp/ls.err; echo \"ls=$? errors=$(wc -l </tmp/ls.err)\"; stat -c '%n is a %F' /bin /root",
            T,
        )
        .await?;
    assert!(out.contains("ls=0 errors=0"), "{out}");
    assert!(out.contains("/bin is a symbolic link"), "{out}");
    assert!(out.contains("/root is a directory"), "{out}");
    Ok(())
}

/// Ctrl+C interrupts a foreground program, and again right after.
async fn ctrl_c_twice(rt: &str) -> Result {
    let t = start(rt).await?;
    let mut sh = t.shell().await?;
    for round in 0..2 {
        sh.type_line("sleep 60").await?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        sh.send_keys(b"\x03").await?;
        let out = sh
            .run(
                &format!("echo round-{round}-$((40+2))"),
                Duration::from_secs(10),
            )
            .await?;
        assert!(out.contains(&format!("round-{round}-42")), "{out}");
    }
    Ok(())
}

/// A program's SIGINT handler runs on Ctrl+C.
async fn ctrl_c_reaches_a_handler(rt: &str) -> Result {
    let t = start(rt).await?;
    let mut sh = t.shell().await?;
    sh.type_line(r#"bash -c 'trap "echo handled-\$((6*7)); exit 0" INT; echo armed; while :; do sleep 0.1; done'"#)
        .await?;
    sh.expect(r"[\r\n]armed\r\n", T).await?;
    sh.send_keys(b"\x03").await?;
    sh.expect("handled-42", Duration::from_secs(10)).await?;
    Ok(())
}

/// Ctrl+Z stops the foreground job; `jobs` lists it and `fg` brings it back.
async fn ctrl_z_jobs_fg(rt: &str) -> Result {
    let t = start(rt).await?;
    let mut sh = t.shell().await?;
    sh.type_line("sleep 77").await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    sh.send_keys(b"\x1a").await?;
    sh.expect(r"Stopped\s+sleep 77", Duration::from_secs(10))
        .await?;
    let out = sh.run("jobs", T).await?;
    assert!(out.contains("sleep 77"), "{out}");
    sh.type_line("fg").await?;
    sh.expect(r"fg\r\n.*[\r\n]sleep 77\r\n", T).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    sh.send_keys(b"\x03").await?;
    let out = sh.run("jobs | wc -l", Duration::from_secs(10)).await?;
    assert!(out.contains("\n0"), "{out}");
    Ok(())
}

/// Ctrl+\ quits the foreground program.
async fn ctrl_backslash_quits(rt: &str) -> Result {
    let t = start(rt).await?;
    let mut sh = t.shell().await?;
    sh.type_line("sleep 60").await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    sh.send_keys(b"\x1c").await?;
    sh.expect("Quit", Duration::from_secs(10)).await?;
    let out = sh.run("echo after-quit", Duration::from_secs(5)).await?;
    assert!(out.contains("after-quit"), "{out}");
    Ok(())
}

/// A resize reaches the foreground program as SIGWINCH, and the TTY has the new size.
async fn resize_sends_winch(rt: &str) -> Result {
    let t = start(rt).await?;
    let mut sh = t.shell().await?;
    sh.type_line(r#"bash -c 'trap "echo winch-\$(stty size | tr \" \" x)" WINCH; echo armed; while :; do sleep 0.1; done'"#)
        .await?;
    sh.expect(r"[\r\n]armed\r\n", T).await?;
    sh.resize(101, 33).await?;
    sh.expect("winch-33x101", Duration::from_secs(10)).await?;
    sh.send_keys(b"\x03").await?;
    let out = sh.run("stty size", T).await?;
    assert!(out.contains("\n33 101"), "{out}");
    Ok(())
}

/// Ending the session (the shell's terminal closes) sends SIGHUP to its program.
async fn sighup_on_close(rt: &str) -> Result {
    let t = start(rt).await?;
    let mut sh = t.shell().await?;
    let tag = rand_u32();
    sh.type_line(&format!(
        r#"bash -c 'trap "echo hup > /tmp/hup-{tag}; exit 0" HUP; echo armed; while :; do sleep 0.1; done'"#
    ))
    .await?;
    sh.expect(r"[\r\n]armed\r\n", T).await?;
    t.app.state.sandboxes.hang_up_terminal(&t.id).await;
    sh.wait_closed(T).await?;
    let mut again = t.shell().await?;
    // The hang-up runs through the engine: give it a few seconds.
    let out = again
        .run(
            &format!("for i in $(seq 50); do [ -f /tmp/hup-{tag} ] && break; sleep 0.2; done; cat /tmp/hup-{tag}"),
            T,
        )
        .await?;
    assert!(out.contains("\nhup"), "{out}");
    Ok(())
}

/// The shell outlives the app server's side of the terminal: ttyd and every relay it ran are
/// killed (SIGKILL, as when the server dies), the page's socket is told to reconnect, and the
/// reconnected page finds the same shell still running its program, with its earlier output.
async fn the_shell_outlives_the_servers_terminal_host(rt: &str) -> Result {
    let t = start(rt).await?;
    let mut sh = t.shell().await?;
    let tag = rand_u32();
    sh.type_line(&format!(
        "export MARK=m{tag}; i=0; while :; do i=$((i+1)); echo tick$i; sleep 0.2; done"
    ))
    .await?;
    sh.expect(r"[\r\n]tick3\r\n", T).await?;
    t.app.kill_ttyd()?;
    let closed = sh.wait_closed(T).await?;
    assert!(closed.starts_with("1012"), "closed with {closed:?}");
    let mut again = t
        .visitor
        .terminal(&t.id)
        .await
        .map_err(|s| format!("upgrade: {s}"))?;
    // The replay holds the earlier output, and the loop counts on past where it was.
    again.expect(r"[\r\n]tick1\r\n", T).await?;
    let last = last_tick(&sh.screen).ok_or("no tick before the kill")?;
    again
        .expect(&format!(r"[\r\n]tick{}\r\n", last + 5), T)
        .await?;
    // A ^C that lands after `sleep` ended but before bash reaped it is taken as handled by the
    // child, and bash runs on (bash's own rule, under any terminal): press it again, as a person
    // would.
    let mut stopped = false;
    for _ in 0..5 {
        again.send_keys(b"\x03").await?;
        if again
            .expect(r"[#$] $", Duration::from_secs(3))
            .await
            .is_ok()
        {
            stopped = true;
            break;
        }
    }
    assert!(
        stopped,
        "Ctrl+C never stopped the loop:\n{}",
        tail_of(&again.screen, 2000)
    );
    let out = again.run("echo $MARK", T).await?;
    assert!(out.contains(&format!("\nm{tag}")), "{out}");
    Ok(())
}

/// The shell's holder (a host process beside the engine) ends with its sandbox: a stopped
/// sandbox leaves no process behind, even where the engine keeps the exec stream open.
async fn the_holder_ends_with_its_sandbox(rt: &str) -> Result {
    let t = start(rt).await?;
    let mut sh = t.shell().await?;
    sh.run("echo held", T).await?;
    let container = format!("trythis-{}", t.id);
    let holder = holder_of(&container).ok_or("no holder runs for the shell")?;
    let r = t.visitor.stop_sandbox(&t.id).await?;
    assert_eq!(r.status, 204);
    let deadline = std::time::Instant::now() + Duration::from_secs(40);
    while std::path::Path::new(&format!("/proc/{holder}")).exists() {
        if std::time::Instant::now() > deadline {
            return Err(format!("the holder {holder} of {container} outlived its sandbox").into());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Ok(())
}

/// The pid of `relay hold … CONTAINER …`.
fn holder_of(container: &str) -> Option<i32> {
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: i32 = e.file_name().to_string_lossy().parse().ok()?;
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        (args.get(1) == Some(&b"hold".as_slice()) && args.get(4) == Some(&container.as_bytes()))
            .then_some(pid)
    })
}

fn last_tick(screen: &str) -> Option<u64> {
    screen
        .rsplit("tick")
        .find_map(|s| s.split("\r\n").next()?.parse().ok())
}

/// Ctrl+D ends `cat`, then the shell; the browser hears why and a new shell starts on demand.
async fn ctrl_d_ends_cat_and_the_shell(rt: &str) -> Result {
    let t = start(rt).await?;
    let mut sh = t.shell().await?;
    sh.type_line("cat").await?;
    // Keys typed before cat runs are read by the shell's line editor (typeahead, as on Linux).
    tokio::time::sleep(Duration::from_millis(800)).await;
    sh.type_line("typed-into-cat").await?;
    sh.expect(r"typed-into-cat\r\ntyped-into-cat", T).await?;
    sh.send_keys(b"\x04").await?;
    let out = sh.run("echo cat-ended", Duration::from_secs(10)).await?;
    assert!(out.contains("cat-ended"), "{out}");
    // At the prompt (a ^D typed while bash still runs the command is the command's EOF).
    sh.expect(r"[#$] $", T).await?;
    sh.send_keys(b"\x04").await?;
    let closed = sh.wait_closed(Duration::from_secs(10)).await?;
    assert_eq!(closed, "4002 the shell exited");
    // A new shell in the same sandbox, sized by the browser before its first prompt.
    let mut again = t
        .visitor
        .terminal_sized(&t.id, 97, 31)
        .await
        .map_err(|s| format!("upgrade: {s}"))?;
    let out = again.run("stty size", T).await?;
    assert!(out.contains("\n31 97"), "{out}");
    Ok(())
}

/// UTF-8 passes both ways: typed CJK and emoji reach the program byte for byte and come back.
async fn utf8_in_and_out(rt: &str) -> Result {
    let t = start(rt).await?;
    let mut sh = t.shell().await?;
    let out = sh
        .run(
            "printf '%s' '世界-🎉' | od -An -tx1 | tr -d ' \\n'; echo; echo 'ünï-世界-🎉'",
            T,
        )
        .await?;
    assert!(out.contains("e4b896e7958c2df09f8e89"), "{out}");
    assert!(out.contains("\nünï-世界-🎉"), "{out}");
    Ok(())
}

/// Tab completes a file name.
async fn tab_completion(rt: &str) -> Result {
    let t = start(rt).await?;
    let mut sh = t.shell().await?;
    let tag = rand_u32();
    sh.run(&format!("touch /tmp/zq-completed-{tag}.txt"), T)
        .await?;
    sh.send_keys(b"echo /tmp/zq-comp\t").await?;
    sh.expect(&format!("zq-completed-{tag}.txt"), T).await?;
    sh.send_keys(b"\r").await?;
    sh.expect(&format!(r"[\r\n]/tmp/zq-completed-{tag}\.txt\r\n"), T)
        .await?;
    Ok(())
}

/// 100,000 lines of output arrive whole and in order.
async fn big_output_whole_and_in_order(rt: &str) -> Result {
    let t = start(rt).await?;
    let mut sh = t.shell().await?;
    let out = sh.run("seq 1 100000", Duration::from_secs(120)).await?;
    let numbers: Vec<u64> = out
        .split("\r\n")
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    let expected: Vec<u64> = (1..=100_000).collect();
    assert!(
        numbers == expected,
        "{} numbers, first differences at {:?}",
        numbers.len(),
        numbers.iter().zip(&expected).position(|(a, b)| a != b)
    );
    Ok(())
}

/// A program that turns echo off reads a secret that never shows on the screen; a raw-mode
/// program gets Ctrl+C as a byte.
async fn echo_off_and_raw_mode(rt: &str) -> Result {
    let t = start(rt).await?;
    let mut sh = t.shell().await?;
    sh.type_line("read -s -p 'secret? ' s; echo \"got ${#s} chars\"")
        .await?;
    sh.expect("secret\\? $", T).await?;
    sh.type_line("hunter22").await?;
    sh.expect("got 8 chars", T).await?;
    assert!(!sh.screen.contains("hunter22"), "{}", sh.screen);
    sh.type_line("stty raw -echo; head -c1 | od -An -tx1; stty sane")
        .await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    sh.send_keys(b"\x03").await?;
    sh.expect(r" 03", Duration::from_secs(10)).await?;
    Ok(())
}

/// The first shell (started with the sandbox, before any browser) takes the browser's size when
/// it attaches: the first line typed, longer than 80 columns, does not wrap in a 120-column
/// terminal, and programs read the new width.
async fn the_shell_has_the_browsers_size(rt: &str) -> Result {
    let t = start(rt).await?;
    let mut sh = t.shell().await?;
    let long = format!("echo {}", "x".repeat(85));
    sh.send_keys(long.as_bytes()).await?;
    sh.expect(&format!("{long}$"), T).await?;
    sh.send_keys(b"\r").await?;
    sh.expect(&format!("[\r\n]{}\r\n", "x".repeat(85)), T)
        .await?;
    let out = sh.run("tput cols", T).await?;
    assert!(out.contains("\n120"), "{out}");
    Ok(())
}

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod gvisor { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() -> super::Result { super::$name("gvisor").await } )* }
        mod runc_userns { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() -> super::Result { super::$name("runc_userns").await } )* }
    };
}

conformance!(
    ls_and_stat,
    ctrl_c_twice,
    ctrl_c_reaches_a_handler,
    ctrl_z_jobs_fg,
    ctrl_backslash_quits,
    resize_sends_winch,
    sighup_on_close,
    the_shell_outlives_the_servers_terminal_host,
    the_holder_ends_with_its_sandbox,
    ctrl_d_ends_cat_and_the_shell,
    utf8_in_and_out,
    tab_completion,
    big_output_whole_and_in_order,
    echo_off_and_raw_mode,
    the_shell_has_the_browsers_size,
);
