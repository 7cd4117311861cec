//! Table tests for defaulting: each kind gets Kubernetes' defaults, and applying them twice
//! changes nothing.

use serde_json::{Value, json};

use super::apply_defaults;

fn defaulted(group: &str, kind: &str, obj: Value) -> Value {
    let mut obj = obj;
    apply_defaults(group, kind, &mut obj);
    obj
}

fn nginx_container() -> Value {
    json!({"name": "web", "image": "nginx", "ports": [{"containerPort": 80}]})
}

fn pod_template(labels: Value) -> Value {
    json!({"metadata": {"labels": labels}, "spec": {"containers": [nginx_container()]}})
}

/// One object of every kind with defaults, in its most common minimal form.
fn samples() -> Vec<(&'static str, &'static str, Value)> {
    vec![
        (
            "",
            "Pod",
            json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"containers": [nginx_container()],
                "volumes": [{"name": "cfg", "configMap": {"name": "cfg"}}, {"name": "scratch"}]}}),
        ),
        (
            "",
            "PodTemplate",
            json!({"metadata": {"name": "t"}, "template": pod_template(json!({"a": "b"}))}),
        ),
        (
            "",
            "ReplicationController",
            json!({"metadata": {"name": "rc"},
            "spec": {"template": pod_template(json!({"app": "rc"}))}}),
        ),
        (
            "",
            "Service",
            json!({"metadata": {"name": "svc"},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}}),
        ),
        (
            "",
            "Service",
            json!({"metadata": {"name": "lb"},
            "spec": {"type": "LoadBalancer", "ports": [{"port": 443, "targetPort": "https"}]}}),
        ),
        (
            "",
            "Secret",
            json!({"metadata": {"name": "s"}, "data": {"a": "Yg=="}}),
        ),
        ("", "Namespace", json!({"metadata": {"name": "team-a"}})),
        (
            "",
            "Node",
            json!({"metadata": {"name": "n1"}, "status": {"capacity": {"cpu": "4"}}}),
        ),
        (
            "",
            "PersistentVolume",
            json!({"metadata": {"name": "pv"},
            "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"], "hostPath": {"path": "/data"}}}),
        ),
        (
            "",
            "PersistentVolumeClaim",
            json!({"metadata": {"name": "pvc"},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}),
        ),
        (
            "",
            "Endpoints",
            json!({"metadata": {"name": "e"},
            "subsets": [{"addresses": [{"ip": "10.0.0.1"}], "ports": [{"port": 80}]}]}),
        ),
        (
            "",
            "LimitRange",
            json!({"metadata": {"name": "l"},
            "spec": {"limits": [{"type": "Container", "max": {"cpu": "2"}, "min": {"memory": "64Mi"}}]}}),
        ),
        (
            "",
            "Event",
            json!({"metadata": {"name": "ev"}, "involvedObject": {"kind": "Pod", "name": "web"}}),
        ),
        (
            "apps",
            "Deployment",
            json!({"metadata": {"name": "web"},
            "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": pod_template(json!({"app": "web"}))}}),
        ),
        (
            "apps",
            "ReplicaSet",
            json!({"metadata": {"name": "web"},
            "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": pod_template(json!({"app": "web"}))}}),
        ),
        (
            "apps",
            "StatefulSet",
            json!({"metadata": {"name": "db"},
            "spec": {"serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
                "template": pod_template(json!({"app": "db"})),
                "volumeClaimTemplates": [{"metadata": {"name": "data"},
                    "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]}}),
        ),
        (
            "apps",
            "DaemonSet",
            json!({"metadata": {"name": "agent"},
            "spec": {"selector": {"matchLabels": {"app": "agent"}}, "template": pod_template(json!({"app": "agent"}))}}),
        ),
        (
            "batch",
            "Job",
            json!({"metadata": {"name": "pi", "uid": "1234"},
            "spec": {"template": {"spec": {"restartPolicy": "Never",
                "containers": [{"name": "pi", "image": "perl:5.34"}]}}}}),
        ),
        (
            "batch",
            "CronJob",
            json!({"metadata": {"name": "hello"},
            "spec": {"schedule": "*/1 * * * *", "jobTemplate": {"spec": {"template": {"spec": {
                "restartPolicy": "OnFailure", "containers": [{"name": "c", "image": "busybox:1.36"}]}}}}}}),
        ),
        (
            "autoscaling",
            "HorizontalPodAutoscaler",
            json!({"apiVersion": "autoscaling/v2", "metadata": {"name": "h"},
            "spec": {"maxReplicas": 5, "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                "behavior": {"scaleDown": {"stabilizationWindowSeconds": 60}}}}),
        ),
        (
            "autoscaling",
            "HorizontalPodAutoscaler",
            json!({"apiVersion": "autoscaling/v1", "metadata": {"name": "h1"},
            "spec": {"maxReplicas": 5, "targetCPUUtilizationPercentage": 50,
                "scaleTargetRef": {"kind": "Deployment", "name": "web"}}}),
        ),
        (
            "networking.k8s.io",
            "NetworkPolicy",
            json!({"metadata": {"name": "np"},
            "spec": {"podSelector": {}, "egress": [{"ports": [{"port": 53}]}]}}),
        ),
        (
            "networking.k8s.io",
            "IngressClass",
            json!({"metadata": {"name": "ic"},
            "spec": {"controller": "example.com/ingress", "parameters": {"kind": "Params", "name": "p"}}}),
        ),
        (
            "scheduling.k8s.io",
            "PriorityClass",
            json!({"metadata": {"name": "high"}, "value": 1000}),
        ),
        (
            "storage.k8s.io",
            "StorageClass",
            json!({"metadata": {"name": "fast"}, "provisioner": "example.com/disk"}),
        ),
        (
            "discovery.k8s.io",
            "EndpointSlice",
            json!({"metadata": {"name": "es"}, "addressType": "IPv4",
            "endpoints": [], "ports": [{"port": 80}]}),
        ),
        (
            "rbac.authorization.k8s.io",
            "RoleBinding",
            json!({"metadata": {"name": "rb", "namespace": "default"},
            "roleRef": {"kind": "Role", "name": "r"},
            "subjects": [{"kind": "User", "name": "jane"}, {"kind": "ServiceAccount", "name": "default"}]}),
        ),
        (
            "apiextensions.k8s.io",
            "CustomResourceDefinition",
            json!({"metadata": {"name": "widgets.example.com"},
            "spec": {"group": "example.com", "scope": "Namespaced",
                "names": {"plural": "widgets", "kind": "Widget"},
                "versions": [{"name": "v1", "served": true, "storage": true,
                    "schema": {"openAPIV3Schema": {"type": "object"}}}]}}),
        ),
    ]
}

#[test]
fn defaulting_is_idempotent_for_every_kind() {
    for (group, kind, obj) in samples() {
        let once = defaulted(group, kind, obj.clone());
        assert_ne!(once, obj, "{group}/{kind} should get some default");
        let twice = defaulted(group, kind, once.clone());
        assert_eq!(once, twice, "{group}/{kind} defaults are not idempotent");
    }
}

#[test]
fn defaulted_objects_are_still_valid() {
    for (group, kind, obj) in samples() {
        let obj = defaulted(group, kind, obj);
        let namespaced = !matches!(
            kind,
            "Namespace"
                | "Node"
                | "PersistentVolume"
                | "PriorityClass"
                | "StorageClass"
                | "CustomResourceDefinition"
                | "IngressClass"
        );
        let mut obj = obj;
        if namespaced && obj.pointer("/metadata/namespace").is_none() {
            obj["metadata"]["namespace"] = json!("default");
        }
        let causes = crate::validation::validate(group, kind, &obj, None, namespaced);
        assert!(causes.is_empty(), "{group}/{kind}: {causes:?}");
    }
}

#[test]
fn defaulted_objects_decode_as_their_types_without_unknown_fields() {
    for (group, kind, obj) in samples() {
        let mut obj = defaulted(group, kind, obj);
        let version = match obj.get("apiVersion").and_then(Value::as_str) {
            Some(api_version) => crate::resources::split_api_version(api_version)
                .1
                .to_string(),
            None => "v1".to_string(),
        };
        let api_version = if group.is_empty() {
            version.clone()
        } else {
            format!("{group}/{version}")
        };
        obj["apiVersion"] = json!(api_version);
        obj["kind"] = json!(kind);
        // ReplicationControllers are not served, so they have no decoder.
        let Some(decoded) = crate::codec::decode(group, &version, kind, obj) else {
            continue;
        };
        let decoded = decoded.unwrap_or_else(|e| panic!("{group}/{kind}: {e}"));
        assert_eq!(
            decoded.unknown_fields,
            Vec::<String>::new(),
            "{group}/{kind}"
        );
    }
}

#[test]
fn pods_read_back_like_kubernetes() {
    let pod = defaulted(
        "",
        "Pod",
        json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"containers": [nginx_container()]}}),
    );
    assert_eq!(
        pod,
        json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {
                "containers": [{"name": "web", "image": "nginx",
                    "ports": [{"containerPort": 80, "protocol": "TCP"}],
                    "imagePullPolicy": "Always",
                    "terminationMessagePath": "/dev/termination-log",
                    "terminationMessagePolicy": "File",
                    "resources": {}}],
                "dnsPolicy": "ClusterFirst",
                "restartPolicy": "Always",
                "securityContext": {},
                "terminationGracePeriodSeconds": 30,
                "schedulerName": "default-scheduler",
                "enableServiceLinks": true,
                "serviceAccountName": "default",
                "serviceAccount": "default",
                "priority": 0,
                "preemptionPolicy": "PreemptLowerPriority"},
            "status": {"phase": "Pending", "qosClass": "BestEffort"}})
    );
}

#[test]
fn pod_field_defaults() {
    let pod = defaulted(
        "",
        "Pod",
        json!({"metadata": {"name": "p"}, "spec": {
        "hostNetwork": true,
        "priorityClassName": "system-node-critical",
        "tolerations": [{"operator": "Exists"}],
        "containers": [{
            "name": "c", "image": "registry.local:5000/app:1.2",
            "ports": [{"containerPort": 8080}],
            "resources": {"limits": {"cpu": "500m", "memory": "128Mi"}},
            "env": [{"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                {"name": "MEM", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory"}}}],
            "livenessProbe": {"httpGet": {"port": 8080}},
            "readinessProbe": {"grpc": {"port": 9000}, "periodSeconds": 5},
            "lifecycle": {"preStop": {"httpGet": {"port": 8080, "path": "/stop"}}}}],
        "volumes": [
            {"name": "a"},
            {"name": "b", "secret": {"secretName": "s"}},
            {"name": "c", "hostPath": {"path": "/var"}},
            {"name": "d", "projected": {"sources": [{"serviceAccountToken": {"path": "token"}},
                {"downwardAPI": {"items": [{"path": "ns", "fieldRef": {"fieldPath": "metadata.namespace"}}]}}]}},
            {"name": "e", "ephemeral": {"volumeClaimTemplate": {"spec": {"accessModes": ["ReadWriteOnce"]}}}}]}}),
    );
    let c = &pod["spec"]["containers"][0];
    assert_eq!(c["imagePullPolicy"], "IfNotPresent");
    assert_eq!(c["ports"][0]["hostPort"], 8080);
    assert_eq!(
        c["resources"]["requests"],
        json!({"cpu": "500m", "memory": "128Mi"})
    );
    assert_eq!(c["env"][0]["valueFrom"]["fieldRef"]["apiVersion"], "v1");
    assert_eq!(c["env"][1]["valueFrom"]["resourceFieldRef"]["divisor"], "0");
    assert_eq!(
        c["livenessProbe"],
        json!({"httpGet": {"port": 8080, "path": "/", "scheme": "HTTP"},
            "timeoutSeconds": 1, "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3})
    );
    assert_eq!(c["readinessProbe"]["grpc"]["service"], "");
    assert_eq!(c["readinessProbe"]["periodSeconds"], 5);
    assert_eq!(c["lifecycle"]["preStop"]["httpGet"]["scheme"], "HTTP");
    assert_eq!(c["lifecycle"]["preStop"]["httpGet"]["path"], "/stop");
    let v = &pod["spec"]["volumes"];
    assert_eq!(v[0]["emptyDir"], json!({}));
    assert_eq!(v[1]["secret"]["defaultMode"], 420);
    assert_eq!(v[2]["hostPath"]["type"], "");
    assert_eq!(v[3]["projected"]["defaultMode"], 420);
    assert_eq!(
        v[3]["projected"]["sources"][0]["serviceAccountToken"]["expirationSeconds"],
        3600
    );
    assert_eq!(
        v[3]["projected"]["sources"][1]["downwardAPI"]["items"][0]["fieldRef"]["apiVersion"],
        "v1"
    );
    assert_eq!(
        v[4]["ephemeral"]["volumeClaimTemplate"]["spec"]["volumeMode"],
        "Filesystem"
    );
    assert_eq!(pod["spec"]["priority"], 2_000_001_000);
    // An operator-Exists toleration without a key already tolerates both taints.
    assert_eq!(pod["spec"]["tolerations"], json!([{"operator": "Exists"}]));
    assert_eq!(pod["status"]["qosClass"], "Guaranteed");
}

#[test]
fn image_pull_policy_follows_the_tag() {
    for (image, policy) in [
        ("nginx", "Always"),
        ("nginx:latest", "Always"),
        ("nginx:1.25", "IfNotPresent"),
        ("localhost:5000/nginx", "Always"),
        ("localhost:5000/nginx:1", "IfNotPresent"),
        ("nginx@sha256:abcd", "IfNotPresent"),
    ] {
        let pod = defaulted(
            "",
            "Pod",
            json!({"spec": {"containers": [{"name": "c", "image": image}]}}),
        );
        assert_eq!(
            pod["spec"]["containers"][0]["imagePullPolicy"], policy,
            "{image}"
        );
    }
}

#[test]
fn qos_classes() {
    let qos = |resources: Value| {
        let pod = defaulted(
            "",
            "Pod",
            json!({"spec": {"containers": [
            {"name": "c", "image": "i", "resources": resources}]}}),
        );
        pod["status"]["qosClass"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(qos(json!({})), "BestEffort");
    assert_eq!(qos(json!({"requests": {"cpu": "100m"}})), "Burstable");
    assert_eq!(
        qos(json!({"limits": {"cpu": "1", "memory": "1Gi"}})),
        "Guaranteed"
    );
    assert_eq!(
        qos(json!({"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "500m"}})),
        "Burstable"
    );
}

#[test]
fn templates_do_not_get_pod_only_defaults() {
    let d = defaulted(
        "apps",
        "Deployment",
        json!({"metadata": {"name": "web"}, "spec": {
        "selector": {"matchLabels": {"app": "web"}},
        "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [
            {"name": "web", "image": "nginx:1.25", "resources": {"limits": {"cpu": "1"}}}]}}}}),
    );
    let spec = &d["spec"];
    assert_eq!(spec["replicas"], 1);
    assert_eq!(spec["revisionHistoryLimit"], 10);
    assert_eq!(spec["progressDeadlineSeconds"], 600);
    assert_eq!(
        spec["strategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}})
    );
    let pod_spec = &spec["template"]["spec"];
    assert_eq!(pod_spec["restartPolicy"], "Always");
    assert_eq!(pod_spec["schedulerName"], "default-scheduler");
    assert!(pod_spec.get("enableServiceLinks").is_none());
    assert!(pod_spec.get("tolerations").is_none());
    assert!(pod_spec.get("priority").is_none());
    assert!(
        pod_spec["containers"][0]["resources"]
            .get("requests")
            .is_none()
    );

    let recreate = defaulted(
        "apps",
        "Deployment",
        json!({"spec": {"strategy": {"type": "Recreate"}}}),
    );
    assert_eq!(recreate["spec"]["strategy"], json!({"type": "Recreate"}));
    let zero = defaulted("apps", "Deployment", json!({"spec": {"replicas": 0}}));
    assert_eq!(zero["spec"]["replicas"], 0);
}

#[test]
fn workload_defaults() {
    let sts = defaulted("apps", "StatefulSet", samples()[15].2.clone());
    let spec = &sts["spec"];
    assert_eq!(spec["podManagementPolicy"], "OrderedReady");
    assert_eq!(
        spec["updateStrategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}})
    );
    assert_eq!(
        spec["persistentVolumeClaimRetentionPolicy"],
        json!({"whenDeleted": "Retain", "whenScaled": "Retain"})
    );
    assert_eq!(spec["replicas"], 1);
    assert_eq!(spec["revisionHistoryLimit"], 10);
    let claim = &spec["volumeClaimTemplates"][0];
    assert_eq!(claim["apiVersion"], "v1");
    assert_eq!(claim["kind"], "PersistentVolumeClaim");
    assert_eq!(claim["spec"]["volumeMode"], "Filesystem");
    assert_eq!(claim["status"]["phase"], "Pending");

    let ds = defaulted("apps", "DaemonSet", json!({"spec": {}}));
    assert_eq!(
        ds["spec"]["updateStrategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}})
    );
    assert_eq!(ds["spec"]["revisionHistoryLimit"], 10);

    let ondelete = defaulted(
        "apps",
        "StatefulSet",
        json!({"spec": {"updateStrategy": {"type": "OnDelete"}}}),
    );
    assert_eq!(
        ondelete["spec"]["updateStrategy"],
        json!({"type": "OnDelete"})
    );
}

#[test]
fn jobs_get_generated_selectors_and_labels() {
    let job = defaulted("batch", "Job", samples()[17].2.clone());
    let spec = &job["spec"];
    assert_eq!(spec["parallelism"], 1);
    assert_eq!(spec["completions"], 1);
    assert_eq!(spec["backoffLimit"], 6);
    assert_eq!(spec["completionMode"], "NonIndexed");
    assert_eq!(spec["suspend"], false);
    assert_eq!(spec["podReplacementPolicy"], "TerminatingOrFailed");
    assert!(spec.get("manualSelector").is_none());
    assert_eq!(
        spec["selector"],
        json!({"matchLabels": {"batch.kubernetes.io/controller-uid": "1234"}})
    );
    let labels = json!({
        "batch.kubernetes.io/job-name": "pi", "job-name": "pi",
        "batch.kubernetes.io/controller-uid": "1234", "controller-uid": "1234"});
    assert_eq!(spec["template"]["metadata"]["labels"], labels);
    assert_eq!(job["metadata"]["labels"], labels);
    assert_eq!(spec["template"]["spec"]["restartPolicy"], "Never");

    let parallel = defaulted(
        "batch",
        "Job",
        json!({"spec": {"parallelism": 3,
        "podFailurePolicy": {"rules": [{"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]}]}}}),
    );
    assert!(parallel["spec"].get("completions").is_none());
    assert_eq!(parallel["spec"]["podReplacementPolicy"], "Failed");
    assert_eq!(
        parallel["spec"]["podFailurePolicy"]["rules"][0]["onPodConditions"][0]["status"],
        "True"
    );
    let per_index = defaulted("batch", "Job", json!({"spec": {"backoffLimitPerIndex": 1}}));
    assert_eq!(per_index["spec"]["backoffLimit"], 2147483647);

    let cron = defaulted("batch", "CronJob", samples()[18].2.clone());
    let spec = &cron["spec"];
    assert_eq!(spec["concurrencyPolicy"], "Allow");
    assert_eq!(spec["suspend"], false);
    assert_eq!(spec["successfulJobsHistoryLimit"], 3);
    assert_eq!(spec["failedJobsHistoryLimit"], 1);
    assert_eq!(
        spec["jobTemplate"]["spec"]["template"]["spec"]["dnsPolicy"],
        "ClusterFirst"
    );
    // Job-level defaults do not apply inside a CronJob's template.
    assert!(spec["jobTemplate"]["spec"].get("backoffLimit").is_none());
}

#[test]
fn service_defaults() {
    let svc = defaulted("", "Service", samples()[3].2.clone());
    assert_eq!(
        svc["spec"],
        json!({"selector": {"app": "web"},
            "ports": [{"port": 80, "protocol": "TCP", "targetPort": 80}],
            "sessionAffinity": "None", "type": "ClusterIP",
            "internalTrafficPolicy": "Cluster",
            "ipFamilyPolicy": "SingleStack", "ipFamilies": ["IPv4"]})
    );
    assert_eq!(svc["status"], json!({"loadBalancer": {}}));

    let lb = defaulted("", "Service", samples()[4].2.clone());
    assert_eq!(lb["spec"]["externalTrafficPolicy"], "Cluster");
    assert_eq!(lb["spec"]["allocateLoadBalancerNodePorts"], true);
    assert_eq!(lb["spec"]["ports"][0]["targetPort"], "https");

    let sticky = defaulted(
        "",
        "Service",
        json!({"spec": {"sessionAffinity": "ClientIP", "clusterIP": "10.0.0.9"}}),
    );
    assert_eq!(
        sticky["spec"]["sessionAffinityConfig"],
        json!({"clientIP": {"timeoutSeconds": 10800}})
    );
    assert_eq!(sticky["spec"]["clusterIPs"], json!(["10.0.0.9"]));

    let external = defaulted(
        "",
        "Service",
        json!({"spec": {"type": "ExternalName", "externalName": "example.com"}}),
    );
    assert!(external["spec"].get("ipFamilies").is_none());
    assert!(external["spec"].get("internalTrafficPolicy").is_none());
}

#[test]
fn core_kind_defaults() {
    let ns = defaulted("", "Namespace", samples()[6].2.clone());
    assert_eq!(
        ns["metadata"]["labels"]["kubernetes.io/metadata.name"],
        "team-a"
    );
    assert_eq!(ns["spec"]["finalizers"], json!(["kubernetes"]));
    assert_eq!(ns["status"]["phase"], "Active");

    assert_eq!(
        defaulted("", "Secret", samples()[5].2.clone())["type"],
        "Opaque"
    );
    let tls = defaulted("", "Secret", json!({"type": "kubernetes.io/tls"}));
    assert_eq!(tls["type"], "kubernetes.io/tls");

    let node = defaulted("", "Node", samples()[7].2.clone());
    assert_eq!(node["status"]["allocatable"], json!({"cpu": "4"}));

    let pv = defaulted("", "PersistentVolume", samples()[8].2.clone());
    assert_eq!(pv["spec"]["persistentVolumeReclaimPolicy"], "Retain");
    assert_eq!(pv["spec"]["volumeMode"], "Filesystem");
    assert_eq!(pv["spec"]["hostPath"]["type"], "");
    assert_eq!(pv["status"]["phase"], "Pending");

    let pvc = defaulted("", "PersistentVolumeClaim", samples()[9].2.clone());
    assert_eq!(pvc["spec"]["volumeMode"], "Filesystem");
    assert_eq!(pvc["status"]["phase"], "Pending");

    let ep = defaulted("", "Endpoints", samples()[10].2.clone());
    assert_eq!(ep["subsets"][0]["ports"][0]["protocol"], "TCP");

    let lr = defaulted("", "LimitRange", samples()[11].2.clone());
    assert_eq!(lr["spec"]["limits"][0]["default"], json!({"cpu": "2"}));
    assert_eq!(
        lr["spec"]["limits"][0]["defaultRequest"],
        json!({"cpu": "2", "memory": "64Mi"})
    );
}

#[test]
fn other_group_defaults() {
    let hpa = defaulted(
        "autoscaling",
        "HorizontalPodAutoscaler",
        samples()[19].2.clone(),
    );
    let spec = &hpa["spec"];
    assert_eq!(spec["minReplicas"], 1);
    assert_eq!(
        spec["metrics"],
        json!([{"type": "Resource", "resource": {"name": "cpu",
            "target": {"type": "Utilization", "averageUtilization": 80}}}])
    );
    assert_eq!(
        spec["behavior"]["scaleDown"],
        json!({"stabilizationWindowSeconds": 60, "selectPolicy": "Max",
            "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}]})
    );
    assert_eq!(
        spec["behavior"]["scaleUp"],
        json!({"stabilizationWindowSeconds": 0, "selectPolicy": "Max",
            "policies": [{"type": "Pods", "value": 4, "periodSeconds": 15},
                {"type": "Percent", "value": 100, "periodSeconds": 15}]})
    );
    let v1 = defaulted(
        "autoscaling",
        "HorizontalPodAutoscaler",
        samples()[20].2.clone(),
    );
    assert_eq!(v1["spec"]["minReplicas"], 1);
    assert!(v1["spec"].get("metrics").is_none());
    let no_behavior = defaulted(
        "autoscaling",
        "HorizontalPodAutoscaler",
        json!({"spec": {}}),
    );
    assert!(no_behavior["spec"].get("behavior").is_none());

    let np = defaulted(
        "networking.k8s.io",
        "NetworkPolicy",
        samples()[21].2.clone(),
    );
    assert_eq!(np["spec"]["policyTypes"], json!(["Ingress", "Egress"]));
    assert_eq!(np["spec"]["egress"][0]["ports"][0]["protocol"], "TCP");
    let ingress_only = defaulted(
        "networking.k8s.io",
        "NetworkPolicy",
        json!({"spec": {"podSelector": {}}}),
    );
    assert_eq!(ingress_only["spec"]["policyTypes"], json!(["Ingress"]));

    let ic = defaulted("networking.k8s.io", "IngressClass", samples()[22].2.clone());
    assert_eq!(ic["spec"]["parameters"]["scope"], "Cluster");
    let pc = defaulted(
        "scheduling.k8s.io",
        "PriorityClass",
        samples()[23].2.clone(),
    );
    assert_eq!(pc["preemptionPolicy"], "PreemptLowerPriority");
    let sc = defaulted("storage.k8s.io", "StorageClass", samples()[24].2.clone());
    assert_eq!(sc["reclaimPolicy"], "Delete");
    assert_eq!(sc["volumeBindingMode"], "Immediate");
    let es = defaulted("discovery.k8s.io", "EndpointSlice", samples()[25].2.clone());
    assert_eq!(
        es["ports"][0],
        json!({"port": 80, "name": "", "protocol": "TCP"})
    );
    let rb = defaulted(
        "rbac.authorization.k8s.io",
        "RoleBinding",
        samples()[26].2.clone(),
    );
    assert_eq!(rb["roleRef"]["apiGroup"], "rbac.authorization.k8s.io");
    assert_eq!(rb["subjects"][0]["apiGroup"], "rbac.authorization.k8s.io");
    assert_eq!(rb["subjects"][1]["apiGroup"], "");

    let crd = defaulted(
        "apiextensions.k8s.io",
        "CustomResourceDefinition",
        samples()[27].2.clone(),
    );
    assert_eq!(crd["spec"]["names"]["singular"], "widget");
    assert_eq!(crd["spec"]["names"]["listKind"], "WidgetList");
    assert_eq!(crd["spec"]["conversion"], json!({"strategy": "None"}));
    assert_eq!(crd["status"]["storedVersions"], json!(["v1"]));
}

#[test]
fn status_counters_read_back_as_zero() {
    let pdb = defaulted(
        "policy",
        "PodDisruptionBudget",
        json!({"spec": {"minAvailable": 1}}),
    );
    assert_eq!(
        pdb["status"],
        json!({"disruptionsAllowed": 0, "currentHealthy": 0, "desiredHealthy": 0, "expectedPods": 0})
    );
    let ds = defaulted(
        "apps",
        "DaemonSet",
        json!({"spec": {}, "status": {"numberReady": 2}}),
    );
    assert_eq!(ds["status"]["numberReady"], 2);
    assert_eq!(ds["status"]["desiredNumberScheduled"], 0);
    let rs = defaulted("apps", "ReplicaSet", json!({"spec": {}}));
    assert_eq!(rs["status"], json!({"replicas": 0}));
    let hpa = defaulted(
        "autoscaling",
        "HorizontalPodAutoscaler",
        json!({"apiVersion": "autoscaling/v1", "spec": {}}),
    );
    assert_eq!(
        hpa["status"],
        json!({"currentReplicas": 0, "desiredReplicas": 0})
    );
}

#[test]
fn ingress_path_type_has_no_default_and_custom_kinds_are_untouched() {
    let ing = json!({"spec": {"rules": [{"http": {"paths": [{"path": "/", "backend": {}}]}}]}});
    assert_eq!(defaulted("networking.k8s.io", "Ingress", ing.clone()), ing);
    let widget = json!({"apiVersion": "example.com/v1", "kind": "Widget", "spec": {}});
    assert_eq!(defaulted("example.com", "Widget", widget.clone()), widget);
}
