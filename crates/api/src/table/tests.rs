use super::*;
use serde_json::json;

fn now() -> Timestamp {
    "2025-06-01T12:00:00Z".parse().unwrap()
}

/// A timestamp `secs` seconds before [`now`].
fn ago(secs: i64) -> String {
    crate::meta::format_time(now() - SignedDuration::from_secs(secs))
}

/// The cells of an object keyed by column name.
fn row(group: &str, kind: &str, obj: &Value) -> Map<String, Value> {
    let cols = columns(group, kind);
    let cells = cells(group, kind, obj, now());
    assert_eq!(cols.len(), cells.len(), "{group}/{kind}");
    cols.into_iter().map(|c| c.name).zip(cells).collect()
}

fn pod(status: Value) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web", "namespace": "default", "creationTimestamp": ago(3600)},
        "spec": {"containers": [{"name": "app", "image": "nginx"}]},
        "status": status,
    })
}

fn pod_status(pod: &Value) -> (String, String, String) {
    let r = row("", "Pod", pod);
    (
        r["Ready"].as_str().unwrap().to_string(),
        r["Status"].as_str().unwrap().to_string(),
        r["Restarts"].as_str().unwrap().to_string(),
    )
}

fn s(a: &str, b: &str, c: &str) -> (String, String, String) {
    (a.to_string(), b.to_string(), c.to_string())
}

#[test]
fn human_durations_match_kubernetes_boundaries() {
    let ms = |n: i64| SignedDuration::from_millis(n);
    let sec = |n: i64| SignedDuration::from_secs(n);
    let min = |n: i64| sec(60 * n);
    let hour = |n: i64| min(60 * n);
    let day = |n: i64| hour(24 * n);
    let year = |n: i64| day(365 * n);
    let cases = [
        (sec(-2), "<invalid>"),
        (sec(-2) + SignedDuration::from_nanos(1), "0s"),
        (sec(0), "0s"),
        (sec(1) - ms(1), "0s"),
        (sec(1), "1s"),
        (sec(70), "70s"),
        (min(2) - ms(1), "119s"),
        (min(2), "2m"),
        (min(2) + sec(1), "2m1s"),
        (sec(190), "3m10s"),
        (min(10) - ms(1), "9m59s"),
        (min(10), "10m"),
        (min(10) + sec(1), "10m"),
        (min(70), "70m"),
        (hour(3) - ms(1), "179m"),
        (hour(3), "3h"),
        (hour(3) + min(1), "3h1m"),
        (hour(3) + min(4), "3h4m"),
        (hour(8) - ms(1), "7h59m"),
        (hour(8), "8h"),
        (hour(8) + min(59), "8h"),
        (hour(47), "47h"),
        (day(2) - ms(1), "47h"),
        (day(2), "2d"),
        (day(2) + hour(1), "2d1h"),
        (day(8) - ms(1), "7d23h"),
        (day(8), "8d"),
        (day(8) + hour(23), "8d"),
        (day(367), "367d"),
        (year(2) - ms(1), "729d"),
        (year(2), "2y"),
        (year(2) + day(1) - ms(1), "2y"),
        (year(2) + day(1), "2y1d"),
        (year(2) + day(100), "2y100d"),
        (year(8) - ms(1), "7y364d"),
        (year(8), "8y"),
        (year(8) + day(364), "8y"),
        (year(9), "9y"),
    ];
    for (d, want) in cases {
        assert_eq!(human_duration(d), want, "{d:?}");
    }
}

#[test]
fn pod_columns_and_wide_cells() {
    let cols = columns("", "Pod");
    let names: Vec<&str> = cols.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "Name",
            "Ready",
            "Status",
            "Restarts",
            "Age",
            "IP",
            "Node",
            "Nominated Node",
            "Readiness Gates"
        ]
    );
    assert_eq!(cols[0].format, "name");
    assert_eq!(cols[4].priority, 0);
    assert_eq!(cols[5].priority, 1);
    assert_eq!(
        cols[0].to_json(),
        json!({"name": "Name", "type": "string", "format": "name",
               "description": docs::META_NAME, "priority": 0})
    );

    let mut running = pod(json!({
        "phase": "Running",
        "podIPs": [{"ip": "10.1.0.5"}],
        "conditions": [{"type": "Ready", "status": "True"}, {"type": "gate/x", "status": "True"}],
        "containerStatuses": [{"name": "app", "ready": true, "restartCount": 0,
                               "state": {"running": {"startedAt": ago(60)}}}],
    }));
    running["spec"]["nodeName"] = json!("node-1");
    running["spec"]["readinessGates"] =
        json!([{"conditionType": "gate/x"}, {"conditionType": "gate/y"}]);
    assert_eq!(
        cells("", "Pod", &running, now()),
        vec![
            json!("web"),
            json!("1/1"),
            json!("Running"),
            json!("0"),
            json!("60m"),
            json!("10.1.0.5"),
            json!("node-1"),
            json!("<none>"),
            json!("1/2"),
        ]
    );
    let pending = pod(json!({"phase": "Pending"}));
    let r = row("", "Pod", &pending);
    assert_eq!(r["IP"], "<none>");
    assert_eq!(r["Node"], "<none>");
    assert_eq!(r["Readiness Gates"], "<none>");
    assert_eq!(pod_status(&pending), s("0/1", "Pending", "0"));
}

#[test]
fn pod_status_reasons() {
    // Waiting for its image: ContainerCreating.
    let creating = pod(json!({"phase": "Pending", "containerStatuses": [
        {"name": "app", "ready": false, "restartCount": 0,
         "state": {"waiting": {"reason": "ContainerCreating"}}}]}));
    assert_eq!(pod_status(&creating), s("0/1", "ContainerCreating", "0"));

    // Crash looping, with the time of the last restart.
    let crashing = pod(json!({"phase": "Running", "containerStatuses": [
        {"name": "app", "ready": false, "restartCount": 5,
         "state": {"waiting": {"reason": "CrashLoopBackOff"}},
         "lastState": {"terminated": {"exitCode": 1, "reason": "Error", "finishedAt": ago(125)}}}]}));
    assert_eq!(
        pod_status(&crashing),
        s("0/1", "CrashLoopBackOff", "5 (2m5s ago)")
    );

    // Terminated without a reason: the exit code or signal.
    let exited = pod(json!({"phase": "Failed", "containerStatuses": [
        {"name": "app", "restartCount": 0, "state": {"terminated": {"exitCode": 3}}}]}));
    assert_eq!(pod_status(&exited), s("0/1", "ExitCode:3", "0"));
    let killed = pod(json!({"phase": "Failed", "containerStatuses": [
        {"name": "app", "restartCount": 0, "state": {"terminated": {"exitCode": 137, "signal": 9}}}]}));
    assert_eq!(pod_status(&killed), s("0/1", "Signal:9", "0"));

    // Completed, and the reason for a pod with a completed and a running container.
    let completed = pod(json!({"phase": "Succeeded", "containerStatuses": [
        {"name": "app", "restartCount": 0, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]}));
    assert_eq!(pod_status(&completed), s("0/1", "Completed", "0"));
    let mut mixed = pod(json!({"phase": "Running", "containerStatuses": [
        {"name": "app", "ready": true, "restartCount": 0, "state": {"running": {}}},
        {"name": "job", "ready": false, "restartCount": 0,
         "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]}));
    mixed["spec"]["containers"] = json!([{"name": "app"}, {"name": "job"}]);
    assert_eq!(pod_status(&mixed), s("1/2", "NotReady", "0"));
    mixed["status"]["conditions"] = json!([{"type": "Ready", "status": "True"}]);
    assert_eq!(pod_status(&mixed), s("1/2", "Running", "0"));

    // Deletion: Terminating unless the pod already finished; NodeLost reads Unknown.
    let mut deleting = crashing.clone();
    deleting["metadata"]["deletionTimestamp"] = json!(ago(5));
    assert_eq!(pod_status(&deleting).1, "Terminating");
    let mut finished = completed.clone();
    finished["metadata"]["deletionTimestamp"] = json!(ago(5));
    assert_eq!(pod_status(&finished).1, "Completed");
    deleting["status"]["reason"] = json!("NodeLost");
    assert_eq!(pod_status(&deleting).1, "Unknown");

    // A status reason (Evicted) and scheduling gates override the phase.
    let evicted = pod(json!({"phase": "Failed", "reason": "Evicted"}));
    assert_eq!(pod_status(&evicted).1, "Evicted");
    let gated = pod(json!({"phase": "Pending", "conditions": [
        {"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}]}));
    assert_eq!(pod_status(&gated).1, "SchedulingGated");
}

#[test]
fn pod_init_container_reasons() {
    let with_inits = |init_statuses: Value| {
        let mut p = pod(
            json!({"phase": "Pending", "initContainerStatuses": init_statuses,
            "containerStatuses": [{"name": "app", "ready": false, "restartCount": 0,
                                   "state": {"waiting": {"reason": "PodInitializing"}}}]}),
        );
        p["spec"]["initContainers"] = json!([{"name": "one"}, {"name": "two"}]);
        p
    };
    let done = json!({"name": "one", "restartCount": 0, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}});

    let waiting = with_inits(json!([
        {"name": "one", "restartCount": 0, "state": {"waiting": {"reason": "PodInitializing"}}},
        {"name": "two", "restartCount": 0, "state": {"waiting": {"reason": "PodInitializing"}}}]));
    assert_eq!(pod_status(&waiting), s("0/1", "Init:0/2", "0"));

    let second = with_inits(json!([done.clone(),
        {"name": "two", "restartCount": 0, "state": {"running": {}}}]));
    assert_eq!(pod_status(&second), s("0/1", "Init:1/2", "0"));

    let pulling = with_inits(json!([done.clone(),
        {"name": "two", "restartCount": 0, "state": {"waiting": {"reason": "ImagePullBackOff"}}}]));
    assert_eq!(pod_status(&pulling).1, "Init:ImagePullBackOff");

    let failed = with_inits(json!([
        {"name": "one", "restartCount": 3, "state": {"terminated": {"exitCode": 1, "reason": "Error"}},
         "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(30)}}}]));
    assert_eq!(pod_status(&failed), s("0/1", "Init:Error", "3 (30s ago)"));

    let no_reason = with_inits(json!([
        {"name": "one", "restartCount": 0, "state": {"terminated": {"exitCode": 2}}}]));
    assert_eq!(pod_status(&no_reason).1, "Init:ExitCode:2");
    let signalled = with_inits(json!([
        {"name": "one", "restartCount": 0, "state": {"terminated": {"exitCode": 2, "signal": 15}}}]));
    assert_eq!(pod_status(&signalled).1, "Init:Signal:15");

    // All init containers done: the main containers decide.
    let started = with_inits(json!([done.clone(),
        {"name": "two", "restartCount": 0, "state": {"terminated": {"exitCode": 0}}}]));
    assert_eq!(pod_status(&started), s("0/1", "PodInitializing", "0"));

    // A started sidecar (restartPolicy Always) counts as a regular container and its restarts
    // stay in the total.
    let mut sidecar = pod(json!({"phase": "Running",
        "conditions": [{"type": "Initialized", "status": "True"}, {"type": "Ready", "status": "True"}],
        "initContainerStatuses": [{"name": "proxy", "ready": true, "started": true, "restartCount": 2,
            "state": {"running": {}}, "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(600)}}}],
        "containerStatuses": [{"name": "app", "ready": true, "restartCount": 1, "state": {"running": {}},
            "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(3 * 3600)}}}]}));
    sidecar["spec"]["initContainers"] = json!([{"name": "proxy", "restartPolicy": "Always"}]);
    assert_eq!(pod_status(&sidecar), s("2/2", "Running", "3 (10m ago)"));
}

fn service(spec: Value, status: Value) -> Value {
    json!({"metadata": {"name": "svc", "creationTimestamp": ago(10)}, "spec": spec, "status": status})
}

#[test]
fn service_ports_and_external_ips() {
    let cluster_ip = service(
        json!({"type": "ClusterIP", "clusterIP": "10.0.0.10", "clusterIPs": ["10.0.0.10"],
               "ports": [{"port": 80, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}],
               "selector": {"b": "2", "a": "1"}}),
        json!({}),
    );
    assert_eq!(
        cells("", "Service", &cluster_ip, now()),
        vec![
            json!("svc"),
            json!("ClusterIP"),
            json!("10.0.0.10"),
            json!("<none>"),
            json!("80/TCP,53/UDP"),
            json!("10s"),
            json!("a=1,b=2"),
        ]
    );

    let node_port = service(
        json!({"type": "NodePort", "clusterIPs": ["10.0.0.11"], "externalIPs": ["192.0.2.1"],
               "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"},
                         {"port": 443, "nodePort": 30443}]}),
        json!({}),
    );
    let r = row("", "Service", &node_port);
    assert_eq!(r["External-IP"], "192.0.2.1");
    assert_eq!(r["Port(s)"], "80:30080/TCP,443:30443/TCP");
    assert_eq!(r["Selector"], "<none>");

    let pending = service(
        json!({"type": "LoadBalancer", "clusterIPs": ["10.0.0.12"], "ports": [{"port": 80, "nodePort": 31000, "protocol": "TCP"}]}),
        json!({"loadBalancer": {}}),
    );
    assert_eq!(row("", "Service", &pending)["External-IP"], "<pending>");

    let mut assigned = pending.clone();
    assigned["status"]["loadBalancer"]["ingress"] =
        json!([{"ip": "203.0.113.9"}, {"hostname": "lb.example.com"}, {"ip": "203.0.113.9"}]);
    assert_eq!(
        row("", "Service", &assigned)["External-IP"],
        "203.0.113.9,lb.example.com"
    );
    assigned["spec"]["externalIPs"] = json!(["192.0.2.7"]);
    assert_eq!(
        row("", "Service", &assigned)["External-IP"],
        "203.0.113.9,lb.example.com,192.0.2.7"
    );

    let headless = service(
        json!({"clusterIP": "None", "clusterIPs": ["None"]}),
        json!({}),
    );
    let r = row("", "Service", &headless);
    assert_eq!(r["Type"], "ClusterIP");
    assert_eq!(r["Cluster-IP"], "None");
    assert_eq!(r["Port(s)"], "<none>");

    let external = service(
        json!({"type": "ExternalName", "externalName": "db.example.com"}),
        json!({}),
    );
    let r = row("", "Service", &external);
    assert_eq!(r["Cluster-IP"], "<none>");
    assert_eq!(r["External-IP"], "db.example.com");
}

#[test]
fn deployment_readiness_and_selector() {
    let deploy = json!({
        "metadata": {"name": "web", "creationTimestamp": ago(2 * 86400 + 3600)},
        "spec": {"replicas": 3,
                 "selector": {"matchLabels": {"app": "web"},
                              "matchExpressions": [{"key": "tier", "operator": "In", "values": ["b", "a"]}]},
                 "template": {"spec": {"containers": [{"name": "app", "image": "nginx:1"},
                                                       {"name": "log", "image": "busybox"}]}}},
        "status": {"replicas": 3, "readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2},
    });
    assert_eq!(
        cells("apps", "Deployment", &deploy, now()),
        vec![
            json!("web"),
            json!("2/3"),
            json!(3),
            json!(2),
            json!("2d1h"),
            json!("app,log"),
            json!("nginx:1,busybox"),
            json!("app=web,tier in (a,b)"),
        ]
    );
    // A fresh deployment without status; a missing replicas field defaults to 1.
    let fresh = json!({"metadata": {"name": "new"}, "spec": {}});
    let r = row("apps", "Deployment", &fresh);
    assert_eq!(r["Ready"], "0/1");
    assert_eq!(r["Up-to-date"], 0);
    assert_eq!(r["Age"], "<unknown>");
    assert_eq!(r["Selector"], "");

    let rs = row("apps", "ReplicaSet", &deploy);
    assert_eq!(rs["Desired"], 3);
    assert_eq!(rs["Ready"], 2);
    assert_eq!(rs["Selector"], "app=web,tier in (a,b)");
    assert_eq!(row("apps", "StatefulSet", &deploy)["Ready"], "2/3");
}

fn job(spec: Value, status: Value) -> Value {
    json!({"metadata": {"name": "pi", "creationTimestamp": ago(600)},
           "spec": spec, "status": status})
}

#[test]
fn job_status_completions_and_duration() {
    let running = job(
        json!({"completions": 3, "parallelism": 1}),
        json!({"startTime": ago(125), "succeeded": 1, "active": 1}),
    );
    let r = row("batch", "Job", &running);
    assert_eq!(r["Status"], "Running");
    assert_eq!(r["Completions"], "1/3");
    assert_eq!(r["Duration"], "2m5s");
    assert_eq!(r["Age"], "10m");

    let complete = job(
        json!({"completions": 1}),
        json!({"startTime": ago(600), "completionTime": ago(540), "succeeded": 1,
               "conditions": [{"type": "SuccessCriteriaMet", "status": "True"},
                              {"type": "Complete", "status": "True"}]}),
    );
    let r = row("batch", "Job", &complete);
    assert_eq!(r["Status"], "Complete");
    assert_eq!(r["Completions"], "1/1");
    assert_eq!(r["Duration"], "60s");

    // Work queue jobs: no completions, several pods in parallel.
    let queue = job(json!({"parallelism": 4}), json!({}));
    let r = row("batch", "Job", &queue);
    assert_eq!(r["Completions"], "0/1 of 4");
    assert_eq!(r["Duration"], "");
    assert_eq!(
        row("batch", "Job", &job(json!({}), json!({})))["Completions"],
        "0/1"
    );

    let failed = job(
        json!({"completions": 2}),
        json!({"conditions": [{"type": "FailureTarget", "status": "True"},
                              {"type": "Failed", "status": "True"}]}),
    );
    assert_eq!(row("batch", "Job", &failed)["Status"], "Failed");
    let suspended = job(
        json!({}),
        json!({"conditions": [{"type": "Suspended", "status": "True"}]}),
    );
    assert_eq!(row("batch", "Job", &suspended)["Status"], "Suspended");
    let mut terminating = suspended.clone();
    terminating["metadata"]["deletionTimestamp"] = json!(ago(1));
    assert_eq!(row("batch", "Job", &terminating)["Status"], "Terminating");
    let not_suspended = job(
        json!({}),
        json!({"conditions": [{"type": "Suspended", "status": "False"}]}),
    );
    assert_eq!(row("batch", "Job", &not_suspended)["Status"], "Running");

    let cron = json!({"metadata": {"name": "nightly", "creationTimestamp": ago(86400)},
        "spec": {"schedule": "0 3 * * *", "suspend": false,
                 "jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}}}},
        "status": {"active": [{"name": "nightly-1"}], "lastScheduleTime": ago(300)}});
    assert_eq!(
        cells("batch", "CronJob", &cron, now()),
        vec![
            json!("nightly"),
            json!("0 3 * * *"),
            json!("<none>"),
            json!("False"),
            json!(1),
            json!("5m"),
            json!("24h"),
            json!("c"),
            json!("i"),
            json!("<none>"),
        ]
    );
}

#[test]
fn node_status_and_roles() {
    let mut node = json!({
        "metadata": {"name": "n1", "creationTimestamp": ago(5 * 86400),
                     "labels": {"node-role.kubernetes.io/control-plane": "",
                                "node-role.kubernetes.io/etcd": "true",
                                "node-role.kubernetes.io/": "",
                                "kubernetes.io/role": "master",
                                "kubernetes.io/hostname": "n1"}},
        "spec": {"unschedulable": true},
        "status": {
            "conditions": [{"type": "MemoryPressure", "status": "False"},
                           {"type": "Ready", "status": "True"}],
            "addresses": [{"type": "InternalIP", "address": "192.168.1.10"},
                          {"type": "Hostname", "address": "n1"}],
            "nodeInfo": {"kubeletVersion": "v1.33.0", "osImage": "Debian GNU/Linux 12 (bookworm)",
                         "kernelVersion": "6.1.0", "containerRuntimeVersion": ""},
        },
    });
    assert_eq!(
        cells("", "Node", &node, now()),
        vec![
            json!("n1"),
            json!("Ready,SchedulingDisabled"),
            json!("control-plane,etcd,master"),
            json!("5d"),
            json!("v1.33.0"),
            json!("192.168.1.10"),
            json!("<none>"),
            json!("Debian GNU/Linux 12 (bookworm)"),
            json!("6.1.0"),
            json!("<unknown>"),
        ]
    );
    node["spec"] = json!({});
    node["status"]["conditions"][1]["status"] = json!("Unknown");
    node["metadata"]["labels"] = json!({});
    let r = row("", "Node", &node);
    assert_eq!(r["Status"], "NotReady");
    assert_eq!(r["Roles"], "<none>");
    node["status"]["conditions"] = json!([]);
    assert_eq!(row("", "Node", &node)["Status"], "Unknown");
}

#[test]
fn events_in_both_api_shapes() {
    let core = json!({
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": "web.17f", "namespace": "default"},
        "involvedObject": {"kind": "Pod", "name": "web", "fieldPath": "spec.containers{app}"},
        "reason": "BackOff", "type": "Warning", "message": "Back-off restarting failed container\n",
        "source": {"component": "kubelet", "host": "n1"},
        "firstTimestamp": ago(3600), "lastTimestamp": ago(90), "count": 12,
    });
    assert_eq!(
        cells("", "Event", &core, now()),
        vec![
            json!("90s"),
            json!("Warning"),
            json!("BackOff"),
            json!("pod/web"),
            json!("spec.containers{app}"),
            json!("kubelet, n1"),
            json!("Back-off restarting failed container"),
            json!("60m"),
            json!(12),
            json!("web.17f"),
        ]
    );
    let cols = columns("", "Event");
    assert_eq!(cols[0].name, "Last Seen");
    assert_eq!((cols[9].name.as_str(), cols[9].priority), ("Name", 1));

    let new_api = json!({
        "apiVersion": "events.k8s.io/v1", "kind": "Event",
        "metadata": {"name": "web.18a", "namespace": "default"},
        "regarding": {"kind": "Deployment", "name": "web"},
        "reason": "ScalingReplicaSet", "type": "Normal", "note": "Scaled up",
        "eventTime": "2025-06-01T11:59:30.000000Z",
        "reportingController": "deployment-controller", "reportingInstance": "",
        "action": "Scale",
    });
    let r = row("events.k8s.io", "Event", &new_api);
    assert_eq!(r["Last Seen"], "30s");
    assert_eq!(r["First Seen"], "30s");
    assert_eq!(r["Object"], "deployment/web");
    assert_eq!(r["Source"], "deployment-controller");
    assert_eq!(r["Message"], "Scaled up");
    assert_eq!(r["Count"], 1);

    let mut series = new_api.clone();
    series["series"] = json!({"count": 4, "lastObservedTime": ago(5)});
    let r = row("events.k8s.io", "Event", &series);
    assert_eq!(
        (r["Last Seen"].clone(), r["Count"].clone()),
        (json!("5s"), json!(4))
    );
}

#[test]
fn configuration_storage_and_rbac_cells() {
    let secret = json!({"metadata": {"name": "tls", "creationTimestamp": ago(30)},
        "type": "kubernetes.io/tls", "data": {"tls.crt": "", "tls.key": ""}});
    assert_eq!(
        cells("", "Secret", &secret, now()),
        vec![
            json!("tls"),
            json!("kubernetes.io/tls"),
            json!(2),
            json!("30s")
        ]
    );
    let cm = json!({"metadata": {"name": "cfg"}, "data": {"a": "1"}, "binaryData": {"b": ""}});
    assert_eq!(row("", "ConfigMap", &cm)["Data"], 2);

    let pvc = json!({"metadata": {"name": "data", "annotations": {}},
        "spec": {"volumeName": "pv-1", "storageClassName": "fast",
                 "resources": {"requests": {"storage": "1Gi"}}},
        "status": {"phase": "Bound", "capacity": {"storage": "1024Mi"},
                   "accessModes": ["ReadWriteMany", "ReadWriteOnce"]}});
    let r = row("", "PersistentVolumeClaim", &pvc);
    assert_eq!(r["Capacity"], "1Gi");
    assert_eq!(r["Access Modes"], "RWO,RWX");
    assert_eq!(r["StorageClass"], "fast");
    assert_eq!(r["VolumeAttributesClass"], "<unset>");

    let quota = json!({"metadata": {"name": "q"}, "status": {
        "hard": {"requests.cpu": "2", "limits.memory": "2Gi", "pods": "10", "limits.cpu": "4"},
        "used": {"requests.cpu": "500m", "limits.memory": "1073741824", "pods": "3"}}});
    let r = row("", "ResourceQuota", &quota);
    assert_eq!(r["Request"], "pods: 3/10, requests.cpu: 500m/2");
    assert_eq!(r["Limit"], "limits.cpu: 0/4, limits.memory: 1073741824/2Gi");

    let sc = json!({"metadata": {"name": "local", "annotations":
        {"storageclass.kubernetes.io/is-default-class": "true"}}, "provisioner": "rancher.io/local-path"});
    assert_eq!(
        cells("storage.k8s.io", "StorageClass", &sc, now()),
        vec![
            json!("local (default)"),
            json!("rancher.io/local-path"),
            json!("Delete"),
            json!("Immediate"),
            json!(false),
            json!("<unknown>")
        ]
    );

    let binding = json!({"metadata": {"name": "b"},
        "roleRef": {"kind": "ClusterRole", "name": "view"},
        "subjects": [{"kind": "User", "name": "alice"}, {"kind": "Group", "name": "devs"},
                     {"kind": "ServiceAccount", "name": "ci", "namespace": "tools"},
                     {"kind": "User", "name": "bob"}]});
    let r = row("rbac.authorization.k8s.io", "ClusterRoleBinding", &binding);
    assert_eq!(r["Role"], "ClusterRole/view");
    assert_eq!(r["Users"], "alice, bob");
    assert_eq!(r["ServiceAccounts"], "tools/ci");

    let revision = json!({"metadata": {"name": "web-7d", "ownerReferences": [
        {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web", "controller": true}]},
        "revision": 2});
    let r = row("apps", "ControllerRevision", &revision);
    assert_eq!(r["Controller"], "statefulset.apps/web");
    assert_eq!(r["Revision"], 2);
}

#[test]
fn network_and_autoscaling_cells() {
    let ingress = json!({"metadata": {"name": "ing"}, "spec": {
        "ingressClassName": "nginx",
        "rules": [{"host": "a.example.com"}, {"host": "b.example.com"}, {}, {"host": "c.example.com"}, {"host": "d.example.com"}],
        "tls": [{"hosts": ["a.example.com"]}]},
        "status": {"loadBalancer": {"ingress": [{"ip": "10.0.0.1"}]}}});
    let r = row("networking.k8s.io", "Ingress", &ingress);
    assert_eq!(r["Class"], "nginx");
    assert_eq!(
        r["Hosts"],
        "a.example.com,b.example.com,c.example.com + 2 more..."
    );
    assert_eq!(r["Address"], "10.0.0.1");
    assert_eq!(r["Ports"], "80, 443");

    let endpoints = json!({"metadata": {"name": "web"}, "subsets": [
        {"addresses": [{"ip": "10.1.0.1"}, {"ip": "10.1.0.2"}], "ports": [{"port": 80}, {"port": 443}]}]});
    assert_eq!(
        row("", "Endpoints", &endpoints)["Endpoints"],
        "10.1.0.1:80,10.1.0.2:80,10.1.0.1:443 + 1 more..."
    );
    assert_eq!(
        row("", "Endpoints", &json!({"metadata": {"name": "x"}}))["Endpoints"],
        "<none>"
    );

    let slice = json!({"metadata": {"name": "web-abc"}, "addressType": "IPv4",
        "ports": [{"port": 80, "name": "http"}, {"name": "named"}, {}],
        "endpoints": [{"addresses": ["10.1.0.1"]}, {"addresses": ["10.1.0.2"]}]});
    let r = row("discovery.k8s.io", "EndpointSlice", &slice);
    assert_eq!(r["Ports"], "80,named,*");
    assert_eq!(r["Endpoints"], "10.1.0.1,10.1.0.2");
    let empty = json!({"metadata": {"name": "e"}, "addressType": "IPv4"});
    assert_eq!(
        row("discovery.k8s.io", "EndpointSlice", &empty)["Endpoints"],
        "<unset>"
    );

    let hpa_v2 = json!({"apiVersion": "autoscaling/v2", "metadata": {"name": "web"},
        "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "minReplicas": 2, "maxReplicas": 10,
                 "metrics": [
                     {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}},
                     {"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "1024Mi"}}},
                     {"type": "Pods", "pods": {"metric": {"name": "qps"}, "target": {"type": "AverageValue", "averageValue": "1k"}}}]},
        "status": {"currentReplicas": 3, "currentMetrics": [
            {"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 45, "averageValue": "250m"}}}]}});
    assert_eq!(
        cells("autoscaling", "HorizontalPodAutoscaler", &hpa_v2, now()),
        vec![
            json!("web"),
            json!("Deployment/web"),
            json!("cpu: 45%/80%, memory: <unknown>/1Gi + 1 more..."),
            json!("2"),
            json!(10),
            json!(3),
            json!("<unknown>"),
        ]
    );
    let hpa_v1 = json!({"apiVersion": "autoscaling/v1", "metadata": {"name": "web"},
        "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "maxReplicas": 5,
                 "targetCPUUtilizationPercentage": 50}, "status": {"currentReplicas": 1}});
    let r = row("autoscaling", "HorizontalPodAutoscaler", &hpa_v1);
    assert_eq!(r["Targets"], "cpu: <unknown>/50%");
    assert_eq!(r["MinPods"], "<unset>");

    let netpol = json!({"metadata": {"name": "deny"}, "spec": {"podSelector": {}}});
    assert_eq!(
        row("networking.k8s.io", "NetworkPolicy", &netpol)["Pod-Selector"],
        "<none>"
    );
    let pdb = json!({"metadata": {"name": "p"}, "spec": {"minAvailable": "50%"},
                     "status": {"disruptionsAllowed": 1}});
    let r = row("policy", "PodDisruptionBudget", &pdb);
    assert_eq!(
        (
            r["Min Available"].clone(),
            r["Max Unavailable"].clone(),
            r["Allowed Disruptions"].clone()
        ),
        (json!("50%"), json!("N/A"), json!(1))
    );
}

#[test]
fn kinds_without_printers_get_the_default_table() {
    for (group, kind) in [
        ("rbac.authorization.k8s.io", "Role"),
        ("rbac.authorization.k8s.io", "ClusterRole"),
        ("", "LimitRange"),
        ("apiextensions.k8s.io", "CustomResourceDefinition"),
        ("example.com", "Widget"),
    ] {
        let cols = columns(group, kind);
        assert_eq!(cols.len(), 2);
        assert_eq!(
            (cols[0].name.as_str(), cols[0].format.as_str()),
            ("Name", "name")
        );
        assert_eq!(
            (cols[1].name.as_str(), cols[1].column_type.as_str()),
            ("Created At", "date")
        );
    }
    let role = json!({"metadata": {"name": "reader", "creationTimestamp": "2025-01-02T03:04:05Z"}});
    assert_eq!(
        cells("rbac.authorization.k8s.io", "Role", &role, now()),
        vec![json!("reader"), json!("2025-01-02T03:04:05Z")]
    );
}

#[test]
fn every_builtin_kind_has_one_cell_per_column() {
    let empty = json!({"metadata": {"name": "x"}});
    for info in crate::resources::builtins() {
        let cols = columns(&info.group, &info.kind);
        let row = cells(&info.group, &info.kind, &empty, now());
        assert_eq!(cols.len(), row.len(), "{}/{}", info.group, info.kind);
        assert_eq!(
            cols.iter().filter(|c| c.format == "name").count(),
            1,
            "{}",
            info.kind
        );
    }
}

#[test]
fn custom_resource_columns() {
    let printer_columns = vec![
        json!({"name": "Ready", "type": "string",
               "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status"}),
        json!({"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas",
               "description": "Desired replicas", "priority": 1}),
        json!({"name": "Ratio", "type": "number", "jsonPath": ".status.ratio"}),
        json!({"name": "Paused", "type": "boolean", "jsonPath": ".spec.paused"}),
        json!({"name": "Ports", "type": "string", "jsonPath": ".spec.ports"}),
        json!({"name": "Started", "type": "date", "jsonPath": ".status.startedAt"}),
        json!({"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}),
    ];
    let cols = custom_columns(&printer_columns);
    assert_eq!(cols.len(), 8);
    assert_eq!(cols[0].format, "name");
    assert_eq!(
        cols[1].description,
        "Custom resource definition column (in JSONPath format): .status.conditions[?(@.type==\"Ready\")].status"
    );
    assert_eq!(
        (cols[2].description.as_str(), cols[2].priority),
        ("Desired replicas", 1)
    );
    assert_eq!(cols[6].column_type, "date");

    let obj = json!({
        "metadata": {"name": "w1", "creationTimestamp": ago(400)},
        "spec": {"replicas": 3, "paused": "no", "ports": [{"port": 80, "name": "http"}]},
        "status": {"ratio": 0.5, "startedAt": "not a time",
                   "conditions": [{"type": "Synced", "status": "False"},
                                  {"type": "Ready", "status": "True"}]},
    });
    assert_eq!(
        custom_cells(&printer_columns, &obj, now()),
        vec![
            json!("w1"),
            json!("True"),
            json!(3),
            json!(0.5),
            Value::Null,
            json!(r#"[{"name":"http","port":80}]"#),
            json!("<invalid>"),
            json!("6m40s"),
        ]
    );
    let bare = json!({"metadata": {"name": "w2"}});
    assert_eq!(
        custom_cells(&printer_columns, &bare, now()),
        vec![
            json!("w2"),
            Value::Null,
            Value::Null,
            Value::Null,
            Value::Null,
            Value::Null,
            Value::Null,
            Value::Null
        ]
    );

    // No columns declared: Name and an Age computed from the creation timestamp.
    let cols = custom_columns(&[]);
    assert_eq!(
        cols.iter()
            .map(|c| (c.name.as_str(), c.column_type.as_str()))
            .collect::<Vec<_>>(),
        [("Name", "string"), ("Age", "date")]
    );
    assert_eq!(
        custom_cells(&[], &obj, now()),
        vec![json!("w1"), json!("6m40s")]
    );
}

#[test]
fn jsonpath_values_print_like_kubectl() {
    assert_eq!(jsonpath_text(&json!(1.5)), "1.5");
    assert_eq!(jsonpath_text(&json!(1e21)), "1e+21");
    assert_eq!(jsonpath_text(&json!(0.00001)), "1e-05");
    assert_eq!(jsonpath_text(&json!(42)), "42");
    assert_eq!(jsonpath_text(&json!(true)), "true");
    assert_eq!(
        jsonpath_text(&json!({"b": "<x>", "a": 1})),
        r#"{"a":1,"b":"\u003cx\u003e"}"#
    );
}

#[test]
fn table_wraps_rows_and_metadata() {
    let obj = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "cfg", "namespace": "ns", "labels": {"a": "b"}, "resourceVersion": "7"},
        "data": {"k": "v"}});
    let row_cells = cells("", "ConfigMap", &obj, now());
    let t = table(
        columns("", "ConfigMap"),
        vec![(row_cells, partial_object_metadata(&obj))],
        "42",
    );
    assert_eq!(t["kind"], "Table");
    assert_eq!(t["apiVersion"], "meta.k8s.io/v1");
    assert_eq!(t["metadata"], json!({"resourceVersion": "42"}));
    assert_eq!(t["columnDefinitions"][1]["name"], "Data");
    assert_eq!(t["columnDefinitions"][1]["format"], "");
    assert_eq!(t["rows"][0]["cells"], json!(["cfg", 1, "<unknown>"]));
    assert_eq!(
        t["rows"][0]["object"],
        json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
               "metadata": {"name": "cfg", "namespace": "ns", "labels": {"a": "b"}, "resourceVersion": "7"}})
    );
    let empty = table(columns("", "Pod"), vec![], "");
    assert_eq!(empty["metadata"], json!({}));
    assert_eq!(empty["rows"], json!([]));
    assert_eq!(partial_object_metadata(&json!({}))["metadata"], json!({}));
}
