//! Tests of container.rs: back-off sequence, restart policy, state transitions.

use super::*;

fn backoff() -> Backoff {
    Backoff::new(
        Duration::from_secs(10),
        Duration::from_secs(300),
        Duration::from_secs(600),
    )
}

#[test]
fn backoff_is_immediate_then_doubles_from_base_to_max() {
    let mut b = backoff();
    let short = Duration::from_secs(1);
    let delays: Vec<u64> = (0..9).map(|_| b.next(short).as_secs()).collect();
    assert_eq!(delays, [0, 10, 20, 40, 80, 160, 300, 300, 300]);
}

#[test]
fn backoff_resets_after_a_long_run() {
    let mut b = backoff();
    for _ in 0..5 {
        b.next(Duration::from_secs(1));
    }
    assert_eq!(b.next(Duration::from_secs(600)), Duration::ZERO);
    assert_eq!(b.next(Duration::from_secs(1)), Duration::from_secs(10));
}

#[test]
fn restart_policies() {
    assert!(should_restart("Always", 0) && should_restart("Always", 1));
    assert!(!should_restart("OnFailure", 0) && should_restart("OnFailure", 2));
    assert!(!should_restart("Never", 1));
}

fn exit(code: i32) -> Exit {
    Exit {
        code,
        reason: if code == 0 { "Completed" } else { "Error" }.into(),
        message: None,
    }
}

#[test]
fn restart_moves_the_run_to_last_state_and_counts() {
    let mut r = Record::new("c", false, "wasmkube/crash", backoff(), "ContainerCreating");
    assert_eq!(r.next_start(), 0);
    r.started(
        "wasm://a".into(),
        CancellationToken::new(),
        CancellationToken::new(),
        Arc::default(),
    );
    assert!(r.status().ready);
    r.exited(&exit(3));
    let s = r.status();
    assert_eq!(
        s.state
            .as_ref()
            .unwrap()
            .terminated
            .as_ref()
            .unwrap()
            .exit_code,
        3
    );
    assert!(!s.ready);
    r.waiting("CrashLoopBackOff", Some("back-off 10s".into()), None);
    assert_eq!(
        r.status()
            .last_state
            .unwrap()
            .terminated
            .unwrap()
            .reason
            .as_deref(),
        Some("Error")
    );
    assert_eq!((r.restart_count, r.next_start()), (0, 1));
    r.started(
        "wasm://b".into(),
        CancellationToken::new(),
        CancellationToken::new(),
        Arc::default(),
    );
    assert_eq!(r.restart_count, 1);
    let s = r.status();
    assert_eq!(s.container_id.as_deref(), Some("wasm://b"));
    assert_eq!(
        s.last_state
            .unwrap()
            .terminated
            .unwrap()
            .container_id
            .as_deref(),
        Some("wasm://a")
    );
}

#[test]
fn adopting_a_running_container_counts_the_agent_restart() {
    let mut before = Record::new("c", false, "wasmkube/web", backoff(), "ContainerCreating");
    before.started(
        "wasm://a".into(),
        CancellationToken::new(),
        CancellationToken::new(),
        Arc::default(),
    );
    before.restart_count = 2;
    let mut after = Record::new("c", false, "wasmkube/web", backoff(), "ContainerCreating");
    after.adopt(&before.status(), "Always");
    assert_eq!(
        after.last.as_ref().map(|t| (t.code, t.reason.as_str())),
        Some((137, "Unknown"))
    );
    assert_eq!(after.next_start(), 3);
    after.started(
        "wasm://b".into(),
        CancellationToken::new(),
        CancellationToken::new(),
        Arc::default(),
    );
    assert_eq!(after.restart_count, 3);
}

#[test]
fn init_containers_are_ready_once_completed() {
    let mut r = Record::new(
        "init",
        true,
        "wasmkube/toolbox",
        backoff(),
        "PodInitializing",
    );
    r.started(
        "wasm://i".into(),
        CancellationToken::new(),
        CancellationToken::new(),
        Arc::default(),
    );
    assert!(!r.status().ready);
    r.exited(&exit(0));
    assert!(r.status().ready);
}

#[test]
fn adopting_keeps_finished_containers_finished() {
    let mut done = Record::new("c", false, "wasmkube/crash", backoff(), "ContainerCreating");
    done.started(
        "wasm://a".into(),
        CancellationToken::new(),
        CancellationToken::new(),
        Arc::default(),
    );
    done.exited(&exit(0));
    let mut never = Record::new("c", false, "wasmkube/crash", backoff(), "ContainerCreating");
    never.adopt(&done.status(), "Never");
    assert_eq!(never.terminated().map(|t| t.code), Some(0));
    let mut always = Record::new("c", false, "wasmkube/crash", backoff(), "ContainerCreating");
    always.adopt(&done.status(), "Always");
    assert!(always.terminated().is_none() && always.last.is_some());
    let mut init = Record::new("i", true, "wasmkube/toolbox", backoff(), "PodInitializing");
    init.adopt(&done.status(), "Always");
    assert_eq!(init.terminated().map(|t| t.code), Some(0));
}

#[test]
fn a_running_post_start_hook_shows_the_container_as_creating() {
    let mut r = Record::new("web", false, "wasmkube/web", backoff(), "ContainerCreating");
    r.started(
        "wasm://h".into(),
        CancellationToken::new(),
        CancellationToken::new(),
        Arc::default(),
    );
    r.post_start_pending = true;
    let s = r.status();
    let waiting = s.state.as_ref().and_then(|st| st.waiting.as_ref());
    assert_eq!(
        waiting.and_then(|w| w.reason.as_deref()),
        Some("ContainerCreating")
    );
    assert!(!s.ready && s.started == Some(false));
    r.post_start_pending = false;
    let s = r.status();
    assert!(s.state.unwrap().running.is_some() && s.ready);
}
