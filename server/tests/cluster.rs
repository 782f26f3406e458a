//! The cluster runtime on a real local cluster: `scripts/cluster.sh up 3` (one Swarm manager, two
//! sandbox nodes, each a Docker engine in a network namespace of its own, gVisor on each), and a
//! full server configured with `TRYTHIS_SWARM_MANAGER`. One scenario, in order, on one cluster
//! start: Tries land on both nodes and work end to end (a shell through the node's engine, the
//! sandbox rules on the node); the admin sees each sandbox's node and the nodes; a drained node
//! gets no new sandbox; 40 Tries spread over both nodes; a node whose engine dies ends its
//! sandboxes with the reason the visitor reads and the next Try lands on the other; when the
//! node comes back, nothing of the lost sandboxes is left on it; a manager's restart interrupts
//! no sandbox; nothing is left in any engine, and the cluster is taken down at the end.
mod common;
use common::*;
use std::collections::HashMap;
use std::time::{Duration, Instant};

const STATE: &str = "/run/trythis-c";
const NODES: [&str; 2] = ["trythis-c2", "trythis-c3"];
const ADMIN: (&str, &str) = ("cluster-admin@example.test", "cluster admin password");

fn script() -> String {
    format!("{}/../scripts/cluster.sh", env!("CARGO_MANIFEST_DIR"))
}

/// `scripts/cluster.sh up 3` (idempotent: starts what is not running, e.g. an engine that died),
/// without the site (the test runs its own server), with a 1 s heartbeat so a lost node is Down
/// within seconds.
fn cluster_up() -> Result {
    let out = std::process::Command::new("bash")
        .args([script().as_str(), "up", "3"])
        .env("TRYTHIS_CLUSTER_SITE", "off")
        .env("TRYTHIS_CLUSTER_HEARTBEAT", "1s")
        .output()?;
    if !out.status.success() {
        return Err(format!(
            "scripts/cluster.sh up 3 failed (the cluster tests need it):\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    Ok(())
}

/// The node's engine, as the tests inspect it (not the platform's path).
async fn node_engine(node: &str) -> Result<bollard::Docker> {
    let i = node.trim_start_matches("trythis-c");
    Ok(bollard::Docker::connect_with_unix(
        &format!("unix://{STATE}/n{i}/docker.sock"),
        30,
        bollard::API_DEFAULT_VERSION,
    )?)
}

/// This installation's containers on `node` (by the instance label).
async fn containers_on(node: &str, instance: &str) -> Result<Vec<String>> {
    let docker = node_engine(node).await?;
    let filters = HashMap::from([(
        "label".to_string(),
        vec![format!(
            "{}={instance}",
            server::sandbox::runtime::LABEL_INSTANCE
        )],
    )]);
    let opts = bollard::query_parameters::ListContainersOptionsBuilder::default()
        .all(true)
        .filters(&filters)
        .build();
    Ok(docker
        .list_containers(Some(opts))
        .await?
        .into_iter()
        .flat_map(|c| c.names.unwrap_or_default())
        .collect())
}

/// Removes this installation's containers from every node when the test ends, passed or not
/// (the server's own cleanup covers only the host's engine).
struct NodeCleanup(String);

impl Drop for NodeCleanup {
    /// Then `scripts/cluster.sh down`: the scenario kills engines, and the next user of the
    /// cluster (scripts/cluster-test.sh) starts from a fresh one.
    fn drop(&mut self) {
        self.remove_containers();
        let _ = std::process::Command::new("bash")
            .args([script().as_str(), "down"])
            .output();
    }
}

impl NodeCleanup {
    fn remove_containers(&self) {
        let label = format!(
            "label={}={}",
            server::sandbox::runtime::LABEL_INSTANCE,
            self.0
        );
        for i in 2..=3 {
            let host = format!("unix://{STATE}/n{i}/docker.sock");
            let Ok(out) = std::process::Command::new("docker")
                .args(["-H", &host, "ps", "-aq", "--filter", &label])
                .output()
            else {
                continue;
            };
            let ids: Vec<String> = String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .map(String::from)
                .collect();
            if !ids.is_empty() {
                let _ = std::process::Command::new("docker")
                    .args(["-H", &host, "rm", "-fv"])
                    .args(&ids)
                    .output();
            }
        }
    }
}

/// A Try of the fixture by `v`: its sandbox and the node its row names.
async fn try_fixture(app: &TestApp, v: &Visitor) -> Result<(String, String)> {
    let r = v.try_project("fixture").await?;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let id = r.body["id"].as_str().ok_or("no id")?.to_string();
    let row = db::sandboxes::get(&app.state.db, &id)
        .await?
        .ok_or("no row")?;
    let node = row.node.ok_or("the row names no node")?;
    Ok((id, node))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sandboxes_spread_over_swarm_nodes_and_a_lost_node_ends_only_its_own() -> Result {
    cluster_up()?;
    let manager = format!("unix://{STATE}/n1/docker.sock");
    let node_engines = format!("unix://{STATE}/engines/{{node}}.sock");
    let app = TestApp::start_with(&[
        ("TRYTHIS_SWARM_MANAGER", &manager),
        ("TRYTHIS_SWARM_NODE_ENGINE", &node_engines),
        ("TRYTHIS_SWARM_REGISTRY", "192.168.231.1:5000"),
        ("TRYTHIS_SWARM_POLL_MS", "300"),
        ("TRYTHIS_MAX_SANDBOXES", "100"),
        ("TRYTHIS_RATE_TRIES_PER_IP_PER_MIN", "1000"),
        ("TRYTHIS_ADMIN_EMAIL", ADMIN.0),
        ("TRYTHIS_ADMIN_PASSWORD", ADMIN.1),
    ])
    .await?;
    let instance = db::instance_id(&app.state.db, server::secrets::random_id).await?;
    let _cleanup = NodeCleanup(instance.clone());
    let mut admin = app.visitor().await?;
    let r = admin.auth("login", ADMIN.0, ADMIN.1).await?;
    assert_eq!(r.status, 200, "{:?}", r.body);
    // A run cut short may have left a node drained: both take sandboxes to begin with.
    for node in NODES {
        let r = admin
            .call("POST", &format!("/api/admin/nodes/{node}/activate"), None)
            .await?;
        assert_eq!(r.status, 204, "{:?}", r.body);
    }

    // 1. Tries land on both nodes, and a shell on each answers through that node's engine.
    let mut by_node: HashMap<String, Vec<(Visitor, String)>> = HashMap::new();
    for _ in 0..4 {
        let v = app.visitor().await?;
        let (id, node) = try_fixture(&app, &v).await?;
        by_node.entry(node).or_default().push((v, id));
    }
    let mut nodes_used: Vec<&String> = by_node.keys().collect();
    nodes_used.sort();
    assert_eq!(
        nodes_used,
        NODES.iter().collect::<Vec<_>>(),
        "4 Tries, both nodes"
    );
    for node in NODES {
        let (v, id) = &by_node[node][0];
        let mut sh = v
            .terminal(id)
            .await
            .map_err(|s| format!("terminal on {node} refused: {s}"))?;
        sh.expect("Welcome to the fixture", Duration::from_secs(30))
            .await?;
        sh.type_line("echo node-$((6*7)) $(hostname)").await?;
        sh.expect("node-42", Duration::from_secs(10)).await?;
        // The sandbox rules hold on the node: gVisor, no network, the memory limit.
        let c = node_engine(node)
            .await?
            .inspect_container(&format!("trythis-{id}"), None)
            .await?;
        let host = c.host_config.unwrap_or_default();
        assert_eq!(host.runtime.as_deref(), Some("trythis-runsc"), "{node}");
        assert_eq!(host.network_mode.as_deref(), Some("none"), "{node}");
        assert_eq!(
            host.memory,
            Some(app.state.sandboxes.limits().memory_mb as i64 * 1024 * 1024)
        );
        assert_eq!(
            host.readonly_rootfs,
            Some(false),
            "gVisor keeps writes in memory"
        );
        // Files ride the node engine's exec stream: in through the API, seen by the shell, out
        // again.
        let text = format!("from the platform to {node}\n");
        let put = v
            .http
            .put(format!(
                "{}/api/sandboxes/{id}/files?path=greeting.txt",
                v.base
            ))
            .header("cookie", &v.cookie)
            .header("x-csrf-token", &v.csrf)
            .body(text.clone())
            .send()
            .await?;
        assert_eq!(
            put.status().as_u16(),
            201,
            "upload on {node}: {}",
            put.text().await?
        );
        sh.type_line("cat greeting.txt").await?;
        sh.expect(
            &format!("from the platform to {node}"),
            Duration::from_secs(10),
        )
        .await?;
        let got = v
            .http
            .get(format!(
                "{}/api/sandboxes/{id}/files?path=greeting.txt",
                v.base
            ))
            .header("cookie", &v.cookie)
            .send()
            .await?
            .text()
            .await?;
        assert_eq!(got, text, "download on {node}");
        let out = sh
            .run(
                "cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d ' '",
                Duration::from_secs(10),
            )
            .await?;
        assert!(
            out.lines().any(|l| l.trim() == "lo") && !out.contains("eth0"),
            "only loopback inside the sandbox on {node}: {out}"
        );
    }

    // 2. The admin sees each sandbox's node, and both nodes with their sandboxes.
    let listed = admin.call("GET", "/api/admin/sandboxes", None).await?;
    assert_eq!(listed.status, 200);
    for (node, list) in &by_node {
        for (_, id) in list {
            let row = listed.body["sandboxes"]
                .as_array()
                .and_then(|a| a.iter().find(|s| s["id"] == id.as_str()))
                .ok_or("a sandbox missing from the admin list")?;
            assert_eq!(row["node"], node.as_str());
        }
    }
    let nodes = listed.body["nodes"].as_array().ok_or("no nodes list")?;
    let names: Vec<&str> = nodes.iter().filter_map(|n| n["name"].as_str()).collect();
    assert_eq!(names, NODES, "{nodes:?}");
    for n in nodes {
        assert_eq!(
            (n["state"].as_str(), n["placeable"].as_bool()),
            (Some("ready"), Some(true))
        );
        assert!(n["sandboxes"].as_u64() >= Some(1), "{n}");
        assert!(n["slots"].as_u64() > Some(10), "{n}");
    }

    // An egress project's sandbox runs on the platform host's engine, beside the egress proxy
    // (the nodes have no way to it), on the egress network.
    publish_net_fixture(&app).await?;
    let n = app.visitor().await?;
    let r = n.try_project("net-fixture").await?;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let nid = r.body["id"].as_str().ok_or("id")?.to_string();
    let row = db::sandboxes::get(&app.state.db, &nid)
        .await?
        .ok_or("row")?;
    assert_eq!(row.node.as_deref(), Some("platform"));
    let host = server::engine::connect_docker(&app.state.config).await?;
    let c = host
        .inspect_container(&format!("trythis-{nid}"), None)
        .await?;
    assert_eq!(
        c.host_config.and_then(|h| h.network_mode),
        Some(app.state.builds.networks().sandbox.network.clone())
    );
    let mut nsh = n
        .terminal(&nid)
        .await
        .map_err(|s| format!("terminal refused: {s}"))?;
    nsh.expect("Welcome to the fixture", Duration::from_secs(30))
        .await?;
    assert_eq!(n.stop_sandbox(&nid).await?.status, 204);

    // 3. A drained node gets no new sandbox; activated, it takes them again.
    let r = admin
        .call("POST", "/api/admin/nodes/trythis-c3/drain", None)
        .await?;
    assert_eq!(r.status, 204, "{:?}", r.body);
    let mut drained_run = Vec::new();
    for _ in 0..4 {
        let v = app.visitor().await?;
        let (id, node) = try_fixture(&app, &v).await?;
        assert_eq!(node, "trythis-c2", "a Try landed on the drained node");
        drained_run.push((v, id));
    }
    // Its running sandboxes keep running.
    let (v3, id3) = &by_node["trythis-c3"][0];
    let st = v3
        .call("GET", &format!("/api/sandboxes/{id3}"), None)
        .await?;
    assert_eq!(st.body["state"], "ready", "{:?}", st.body);
    assert_eq!(
        admin
            .status_of("POST", "/api/admin/nodes/nonexistent/drain")
            .await?,
        404
    );
    let r = admin
        .call("POST", "/api/admin/nodes/trythis-c3/activate", None)
        .await?;
    assert_eq!(r.status, 204, "{:?}", r.body);
    for (v, id) in drained_run {
        assert_eq!(v.stop_sandbox(&id).await?.status, 204);
    }

    // 4. 40 Tries, 8 at a time: the placement spreads them over both nodes.
    let t0 = Instant::now();
    let mut spread: HashMap<String, usize> = HashMap::new();
    let mut forty = Vec::new();
    for _ in 0..5 {
        let batch = futures::future::join_all((0..8).map(|_| async {
            let v = app.visitor().await?;
            let (id, node) = try_fixture(&app, &v).await?;
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>((v, id, node))
        }))
        .await;
        for b in batch {
            let (v, id, node) = b?;
            *spread.entry(node).or_default() += 1;
            forty.push((v, id));
        }
    }
    println!("40 Tries in {:?}: {spread:?}", t0.elapsed());
    for node in NODES {
        let n = spread.get(node).copied().unwrap_or(0);
        assert!((16..=24).contains(&n), "40 Tries spread {spread:?}");
    }
    for (v, id) in forty {
        assert_eq!(v.stop_sandbox(&id).await?.status, 204);
    }

    // 5. Node 3's engine dies: its sandboxes end with the reason their visitors read, node 2's
    //    run on, and the next Try lands on node 2.
    let (v3, id3) = &by_node["trythis-c3"][0];
    let mut watcher = v3
        .terminal(id3)
        .await
        .map_err(|s| format!("terminal refused: {s}"))?;
    let pid: i32 = std::fs::read_to_string(format!("{STATE}/n3/docker.pid"))?
        .trim()
        .parse()?;
    let killed = Instant::now();
    std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()?;
    let reason = loop {
        let st = v3
            .call("GET", &format!("/api/sandboxes/{id3}"), None)
            .await?;
        if st.body["state"] != "ready" && st.body["state"] != "stopping" {
            break st.body["end_reason"]
                .as_str()
                .unwrap_or_default()
                .to_string();
        }
        if killed.elapsed() > Duration::from_secs(60) {
            return Err(format!("the lost node's sandbox still runs: {:?}", st.body).into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    println!("node lost → sandbox ended in {:?}", killed.elapsed());
    assert_eq!(reason, "node_lost");
    watcher.wait_closed(Duration::from_secs(30)).await?;
    for (_, id) in &by_node["trythis-c3"] {
        let row = db::sandboxes::get(&app.state.db, id).await?.ok_or("row")?;
        assert_eq!(
            row.end_reason.map(|r| r.as_str()),
            Some("node_lost"),
            "{id}"
        );
    }
    let (v2, id2) = &by_node["trythis-c2"][0];
    let st = v2
        .call("GET", &format!("/api/sandboxes/{id2}"), None)
        .await?;
    assert_eq!(st.body["state"], "ready", "node 2's sandbox lives on");
    let (again, node) = try_fixture(&app, v3).await?;
    assert_eq!(node, "trythis-c2", "Try again after the loss");
    let mut sh = v3
        .terminal(&again)
        .await
        .map_err(|s| format!("terminal refused: {s}"))?;
    sh.expect("Welcome to the fixture", Duration::from_secs(30))
        .await?;

    // 6. Node 3 comes back: the containers of its lost sandboxes go (no live row), nothing
    //    else of ours is there.
    cluster_up()?;
    let back = Instant::now();
    loop {
        // What the reaper job does every 5 s (the test server runs no periodic jobs).
        app.state.sandboxes.sweep().await?;
        let left = containers_on("trythis-c3", &instance)
            .await
            .unwrap_or_else(|e| vec![e.to_string()]);
        if left.is_empty() {
            break;
        }
        if back.elapsed() > Duration::from_secs(60) {
            return Err(format!("left on the node that came back: {left:?}").into());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Placeable again: new Tries land there (the one that does stays for the next step).
    let deadline = Instant::now() + Duration::from_secs(30);
    let on_c3 = loop {
        let v = app.visitor().await?;
        let (id, node) = try_fixture(&app, &v).await?;
        if node == "trythis-c3" {
            break (v, id);
        }
        assert_eq!(v.stop_sandbox(&id).await?.status, 204);
        if Instant::now() > deadline {
            return Err("the node that came back gets no Try".into());
        }
    };

    // 7. The manager restarts (its engine killed, then started again): nothing that runs is
    //    interrupted, on either node.
    let running = [
        (
            &by_node["trythis-c2"][0].0,
            by_node["trythis-c2"][0].1.clone(),
        ),
        (&on_c3.0, on_c3.1.clone()),
    ];
    let mut shells = Vec::new();
    for (v, id) in &running {
        let sh = v
            .terminal(id)
            .await
            .map_err(|s| format!("terminal of {id} refused: {s}"))?;
        shells.push(sh);
    }
    let pid = std::fs::read_to_string(format!("{STATE}/n1/docker.pid"))?;
    std::process::Command::new("kill")
        .args(["-KILL", pid.trim()])
        .status()?;
    tokio::time::sleep(Duration::from_secs(4)).await;
    // Swarm 20.10's workers sometimes stay Down after their manager's restart (seen here: a
    // worker's agent stopped retrying after its backoff reached 8 s), and `up` then says "not
    // every node is Ready"; the manager's engine is started before that check, and the
    // sandboxes must not care either way.
    if let Err(e) = cluster_up() {
        assert!(e.to_string().contains("not every node is Ready"), "{e}");
    }
    // Through the manager's return (its nodes re-register), for several poll periods.
    let calm = Instant::now();
    while calm.elapsed() < Duration::from_secs(8) {
        for (v, id) in &running {
            let st = v.call("GET", &format!("/api/sandboxes/{id}"), None).await?;
            assert_eq!(st.body["state"], "ready", "{:?}", st.body);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    for sh in &mut shells {
        sh.type_line("echo after-$((40+2))").await?;
        sh.expect("after-42", Duration::from_secs(10))
            .await
            .map_err(|e| format!("a shell after the manager's restart: {e}"))?;
    }
    drop(shells);

    // 8. Every sandbox stopped: nothing of this installation in any engine.
    for (v, id) in by_node.values().flatten() {
        let _ = v.stop_sandbox(id).await?;
    }
    assert_eq!(v3.stop_sandbox(&again).await?.status, 204);
    assert_eq!(on_c3.0.stop_sandbox(&on_c3.1).await?.status, 204);
    for node in NODES {
        let left = containers_on(node, &instance).await?;
        assert!(left.is_empty(), "left on {node}: {left:?}");
    }
    Ok(())
}
