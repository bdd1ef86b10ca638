//! The sandbox against hostile programs (issue 21): each is contained, recorded with its
//! reason, and the next program runs normally.

use std::time::Duration;

use intuitor::sandbox::{Limits, Sandbox, Status};

fn sandbox() -> Sandbox {
    let limits = Limits {
        timeout: Duration::from_secs(5),
        cpu_seconds: 5,
        ..Limits::default()
    };
    Sandbox::new("python3", limits).expect("python3 runs")
}

fn root() -> bool {
    // SAFETY: geteuid(2) has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

#[test]
fn a_passing_program_passes_and_failures_say_why() {
    let s = sandbox();
    let ok = s
        .run("def f(x):\n    return x + 1\nassert f(1) == 2\nprint('hi')")
        .unwrap();
    assert_eq!(ok.status, Status::Passed, "{ok:?}");
    assert_eq!(ok.stdout.trim(), "hi");
    let bad = s.run("assert 1 + 1 == 3, 'arithmetic'").unwrap();
    assert_eq!(
        bad.status,
        Status::Error("AssertionError: arithmetic".into()),
        "{bad:?}"
    );
    let syntax = s.run("def f(:\n").unwrap();
    assert!(
        matches!(&syntax.status, Status::Error(r) if r.starts_with("SyntaxError")),
        "{syntax:?}"
    );
}

#[test]
fn an_early_exit_with_status_zero_is_not_a_pass() {
    let s = sandbox();
    for exit in [
        "import os\nos._exit(0)",
        "import sys\nsys.exit(0)",
        "exit()",
    ] {
        let out = s.run(&format!("{exit}\nassert False")).unwrap();
        assert!(!out.passed(), "{exit}: {out:?}");
    }
}

#[test]
fn an_infinite_loop_times_out_and_a_sleeping_one_too() {
    let s = sandbox();
    let spin = s.run("while True:\n    pass").unwrap();
    assert_eq!(spin.status, Status::Timeout, "{spin:?}");
    let sleep = s.run("import time\ntime.sleep(60)").unwrap();
    assert_eq!(sleep.status, Status::Timeout, "{sleep:?}");
    assert!(
        sleep.seconds < 30.0,
        "killed at the wall clock: {}",
        sleep.seconds
    );
}

#[test]
fn allocating_50_gb_is_a_memory_error() {
    let out = sandbox().run("x = bytearray(50 * 2**30)").unwrap();
    assert_eq!(out.status, Status::Memory, "{out:?}");
}

#[test]
fn writing_a_10_gb_file_stops_at_the_file_limit() {
    let program = "with open('big', 'wb') as f:\n    for _ in range(10 * 1024):\n        f.write(b'0' * 2**20)";
    let out = sandbox().run(program).unwrap();
    assert_eq!(out.status, Status::FileSize, "{out:?}");
}

#[test]
fn a_fork_bomb_is_contained() {
    if !root() {
        eprintln!(
            "skipped: the process limit is per user; it contains a fork bomb as root (a user id per run)"
        );
        return;
    }
    let s = sandbox();
    let out = s
        .run("import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass")
        .unwrap();
    assert!(!out.passed(), "{out:?}");
    // The machine is usable at once: the next program runs normally.
    assert_eq!(s.run("print(1)").unwrap().status, Status::Passed);
}

#[test]
fn files_outside_its_directory_cannot_be_deleted() {
    if !root() {
        eprintln!("skipped: outside root the program runs as its user, who owns the files");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let victim = dir.path().join("victim.txt");
    std::fs::write(&victim, "keep me").unwrap();
    let program = format!(
        "import os, shutil\nos.remove({:?})\nshutil.rmtree({:?})",
        victim.display().to_string(),
        dir.path().display().to_string()
    );
    let out = sandbox().run(&program).unwrap();
    assert!(
        matches!(&out.status, Status::Error(r) if r.starts_with("PermissionError")),
        "{out:?}"
    );
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep me");
}

#[test]
fn it_cannot_reach_a_server_on_the_hosts_loopback() {
    if !root() {
        eprintln!("skipped: a network namespace needs root or unprivileged user namespaces");
        return;
    }
    let server = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = server.local_addr().unwrap().port();
    let program = format!(
        "import socket\ntry:\n    socket.create_connection(('127.0.0.1', {port}), timeout=2)\n    print('connected')\nexcept OSError as e:\n    print('refused', e)"
    );
    let out = sandbox().run(&program).unwrap();
    assert!(out.stdout.contains("refused"), "{out:?}");
    assert!(!out.stdout.contains("connected"), "{out:?}");
}

#[test]
fn the_parents_environment_is_not_visible() {
    // SAFETY: a variable only this test reads; set before the sandbox starts its child.
    unsafe { std::env::set_var("INTUITOR_TEST_SECRET_TOKEN", "hf_secret") };
    let out = sandbox()
        .run("import os\nprint(sorted(os.environ))\nprint(open('/proc/self/environ').read())")
        .unwrap();
    assert_eq!(out.status, Status::Passed, "{out:?}");
    assert!(
        !out.stdout.contains("INTUITOR_TEST_SECRET_TOKEN"),
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains("hf_secret"), "{}", out.stdout);
}

#[test]
fn output_is_bounded_and_a_long_output_can_still_pass() {
    let s = Sandbox::new(
        "python3",
        Limits {
            output_bytes: 1000,
            ..Limits::default()
        },
    )
    .unwrap();
    let out = s.run("print('x' * 10**7)").unwrap();
    assert!(out.stdout.len() <= 1000, "{}", out.stdout.len());
    assert_eq!(
        out.status,
        Status::Passed,
        "its marker is read from the end"
    );
}

#[test]
fn a_process_that_leaves_the_group_is_killed_after_the_run() {
    if !root() {
        eprintln!("skipped: only root gives each run a user id whose processes can be swept");
        return;
    }
    let program = "import os, time\npid = os.fork()\nif pid == 0:\n    os.setsid()\n    time.sleep(1000)\nprint(pid)";
    let out = sandbox().run(program).unwrap();
    assert_eq!(out.status, Status::Passed, "{out:?}");
    let pid: u32 = out.stdout.trim().parse().unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let state = status
        .lines()
        .find(|l| l.starts_with("State:"))
        .unwrap_or("");
    assert!(
        status.is_empty() || state.contains('Z'),
        "the escaped child {pid} still runs: {state}"
    );
}

#[test]
fn a_missing_interpreter_is_a_clear_error() {
    let err = Sandbox::new("/nonexistent/python3", Limits::default()).unwrap_err();
    assert!(
        format!("{err:#}").contains("/nonexistent/python3"),
        "{err:#}"
    );
}

#[test]
fn a_program_given_input_runs_as_a_script_and_still_times_out_ignoring_it() {
    let s = sandbox();
    let echo = s
        .run_with_input("import sys\nprint(sys.stdin.read().upper())", "abc\n")
        .unwrap();
    assert_eq!((echo.status, echo.stdout.trim()), (Status::Passed, "ABC"));
    // 1 MB it never reads: the pipe fills, and the wall clock still ends the run.
    let input = "x".repeat(1 << 20);
    let spin = s.run_with_input("while True:\n    pass", &input).unwrap();
    assert_eq!(spin.status, Status::Timeout, "{spin:?}");
    let bad = s.run_with_input("raise ValueError('no')", "").unwrap();
    assert_eq!(bad.status, Status::Error("ValueError: no".into()));
}

/// Two processes sandboxing at once (an `intuitor eval` judging 40 programs beside this test's
/// slower one) reserve different user ids: neither's end-of-run sweep kills the other's program.
/// Only as root, where runs switch user ids.
#[test]
fn runs_in_two_processes_do_not_kill_each_other() {
    if !root() {
        eprintln!("skipped: not root, so the sandbox switches no user ids");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let problems = dir.path().join("p.jsonl");
    std::fs::write(
        &problems,
        "{\"id\": \"a\", \"prompt\": \"x\", \"tests\": [\"assert True\"]}\n",
    )
    .unwrap();
    let given = dir.path().join("given.jsonl");
    let line = "{\"id\": \"a\", \"completion\": \"```python\\nx = 1\\n```\"}\n";
    std::fs::write(&given, line.repeat(40)).unwrap();
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let eval = std::process::Command::new(env!("CARGO_BIN_EXE_intuitor"))
        .args(["eval", "--model"])
        .arg(fixtures.join("tiny-qwen2"))
        .args(["--tests-field", "tests", "--jobs", "2", "--dataset"])
        .arg(&problems)
        .arg("--completions")
        .arg(&given)
        .arg("--output-dir")
        .arg(dir.path().join("out"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let s = sandbox();
    let mine: Vec<_> = (0..3)
        .map(|_| {
            s.run("import time\ntime.sleep(1.5)\nprint('done')")
                .unwrap()
        })
        .collect();
    let out = eval.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for run in mine {
        assert_eq!(run.status, Status::Passed, "{run:?}");
    }
    let items = std::fs::read_to_string(dir.path().join("out/items.jsonl")).unwrap();
    assert!(
        items.contains("\"verdict\":true") && !items.contains("\"verdict\":false"),
        "{items}"
    );
}
