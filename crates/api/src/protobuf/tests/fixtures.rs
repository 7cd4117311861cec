// Request bodies recorded from kubectl 1.34 (byte-identical in 1.32 and 1.33, except autoscale,
// which is autoscaling/v1 in 1.32) against a recording mock server; see
// docs/research/kubectl-wire.md. Recorded data, hex-encoded.

/// `kubectl create configmap x --from-literal=a=b`
pub(super) const CONFIGMAP: &str = concat!(
    "6b3873000a0f0a0276311209436f6e6669674d6170121b0a110a017812001a0022002a0032003800420012060a016112",
    "01621a002200",
);
/// `kubectl create configmap dry --from-literal=a=b --dry-run=server`
pub(super) const CONFIGMAP_DRY_RUN: &str = concat!(
    "6b3873000a0f0a0276311209436f6e6669674d6170121d0a130a0364727912001a0022002a0032003800420012060a01",
    "611201621a002200",
);
/// `kubectl create secret generic s --from-literal=a=b`
pub(super) const SECRET_GENERIC: &str = concat!(
    "6b3873000a0c0a0276311206536563726574121d0a110a017312001a0022002a0032003800420012060a01611201621a",
    "001a002200",
);
/// `kubectl create secret docker-registry reg --docker-server=s --docker-username=u --docker-password=p`
pub(super) const SECRET_DOCKER_REGISTRY: &str = concat!(
    "6b3873000a0c0a02763112065365637265741289010a130a0372656712001a0022002a0032003800420012520a112e64",
    "6f636b6572636f6e6669676a736f6e123d7b226175746873223a7b2273223a7b22757365726e616d65223a2275222c22",
    "70617373776f7264223a2270222c2261757468223a2264547077227d7d7d1a1e6b756265726e657465732e696f2f646f",
    "636b6572636f6e6669676a736f6e1a002200",
);
/// `kubectl create namespace n`
pub(super) const NAMESPACE: &str = concat!(
    "6b3873000a0f0a02763112094e616d65737061636512190a110a016e12001a0022002a0032003800420012001a020a00",
    "1a002200",
);
/// `kubectl create deployment d --image=nginx`
pub(super) const DEPLOYMENT: &str = concat!(
    "6b3873000a150a07617070732f7631120a4465706c6f796d656e7412a3010a1b0a016412001a0022002a003200380042",
    "005a080a0361707012016412760801120a0a080a036170701201641a5e0a1a0a0012001a0022002a003200380042005a",
    "080a03617070120164124012220a056e67696e7812056e67696e782a0042006a007200800100880100900100a201001a",
    "00320042004a0052005800600068008201008a01009a0100c2010022020a00280038001a0c0800100018002000280038",
    "001a002200",
);
/// `kubectl create service clusterip s --tcp=80:80`
pub(super) const SERVICE_CLUSTERIP: &str = concat!(
    "6b3873000a0d0a02763112075365727669636512600a1b0a017312001a0022002a003200380042005a080a0361707012",
    "0173123d0a180a0538302d3830120354435018502206080010501a00280012080a036170701201731a002209436c7573",
    "74657249503a00420052005a00600068001a020a001a002200",
);
/// `kubectl create serviceaccount sa`
pub(super) const SERVICEACCOUNT: &str = concat!(
    "6b3873000a140a027631120e536572766963654163636f756e7412140a120a02736112001a0022002a00320038004200",
    "1a002200",
);
/// `kubectl create job j --image=busybox`
pub(super) const JOB: &str = concat!(
    "6b3873000a0f0a0862617463682f763112034a6f6212780a110a016a12001a0022002a00320038004200125932570a10",
    "0a0012001a0022002a00320038004200124312200a016a120762757379626f782a0042006a0072008001008801009001",
    "00a201001a054e65766572320042004a0052005800600068008201008a01009a0100c201001a082000280030003a001a",
    "002200",
);
/// `kubectl create cronjob c --image=busybox --schedule="* * * * *"`
pub(super) const CRONJOB: &str = concat!(
    "6b3873000a130a0862617463682f7631120743726f6e4a6f621299010a110a016312001a0022002a0032003800420012",
    "81010a092a202a202a202a202a1a002a720a110a016312001a0022002a00320038004200125d325b0a100a0012001a00",
    "22002a00320038004200124712200a0163120762757379626f782a0042006a007200800100880100900100a201001a09",
    "4f6e4661696c757265320042004a0052005800600068008201008a01009a0100c201001a001a002200",
);
/// `kubectl create quota q --hard=pods=2`
pub(super) const QUOTA: &str = concat!(
    "6b3873000a130a027631120d5265736f7572636551756f746112240a110a017112001a0022002a00320038004200120d",
    "0a0b0a04706f647312030a01321a001a002200",
);
/// `kubectl create priorityclass p --value=10`
pub(super) const PRIORITYCLASS: &str = concat!(
    "6b3873000a250a147363686564756c696e672e6b38732e696f2f7631120d5072696f72697479436c617373122f0a110a",
    "017012001a0022002a00320038004200100a180022002a14507265656d70744c6f7765725072696f726974791a002200",
);
/// `kubectl create poddisruptionbudget p --selector=a=b --min-available=1`
pub(super) const PDB: &str = concat!(
    "6b3873000a200a09706f6c6963792f76311213506f6444697372757074696f6e42756467657412330a110a017012001a",
    "0022002a0032003800420012120a06080010011a0012080a060a01611201621a0a080018002000280030001a002200",
);
/// `kubectl create ingress i --rule=foo.com/bar=svc:80`
pub(super) const INGRESS: &str = concat!(
    "6b3873000a1f0a146e6574776f726b696e672e6b38732e696f2f76311207496e677265737312460a110a016912001a00",
    "22002a00320038004200122d1a2b0a07666f6f2e636f6d12200a1e0a1c0a042f626172120d220b0a0373766312040a00",
    "10501a0545786163741a020a001a002200",
);
/// `kubectl create role r --verb=get --resource=pods`
pub(super) const ROLE: &str = concat!(
    "6b3873000a240a1c726261632e617574686f72697a6174696f6e2e6b38732e696f2f76311204526f6c6512220a110a01",
    "7212001a0022002a00320038004200120d0a0367657412001a04706f64731a002200",
);
/// `kubectl create clusterrole cr --verb=get --resource=pods`
pub(super) const CLUSTERROLE: &str = concat!(
    "6b3873000a2b0a1c726261632e617574686f72697a6174696f6e2e6b38732e696f2f7631120b436c7573746572526f6c",
    "6512230a120a02637212001a0022002a00320038004200120d0a0367657412001a04706f64731a002200",
);
/// `kubectl create rolebinding rb --role=r --user=u`
pub(super) const ROLEBINDING: &str = concat!(
    "6b3873000a2b0a1c726261632e617574686f72697a6174696f6e2e6b38732e696f2f7631120b526f6c6542696e64696e",
    "6712620a120a02726212001a0022002a0032003800420012260a04557365721219726261632e617574686f72697a6174",
    "696f6e2e6b38732e696f1a017522001a240a19726261632e617574686f72697a6174696f6e2e6b38732e696f1204526f",
    "6c651a01721a002200",
);
/// `kubectl create token sa`
pub(super) const TOKEN_REQUEST: &str = concat!(
    "6b3873000a280a1861757468656e7469636174696f6e2e6b38732e696f2f7631120c546f6b656e52657175657374121a",
    "0a100a0012001a0022002a0032003800420012001a040a0012001a002200",
);
/// `kubectl auth can-i get pods`
pub(super) const SELF_SUBJECT_ACCESS_REVIEW: &str = concat!(
    "6b3873000a320a17617574686f72697a6174696f6e2e6b38732e696f2f7631121753656c665375626a65637441636365",
    "7373526576696577123c0a100a0012001a0022002a00320038004200121e0a1c0a0764656661756c7412036765741a00",
    "22002a04706f647332003a001a08080012001a0020001a002200",
);
/// `kubectl auth whoami`
pub(super) const SELF_SUBJECT_REVIEW: &str = concat!(
    "6b3873000a2d0a1861757468656e7469636174696f6e2e6b38732e696f2f7631121153656c665375626a656374526576",
    "696577121a0a100a0012001a0022002a0032003800420012060a040a0012001a002200",
);
/// `kubectl autoscale deployment d --max=3` (kubectl 1.32)
pub(super) const HPA_V1: &str = concat!(
    "6b3873000a290a0e6175746f7363616c696e672f76311217486f72697a6f6e74616c506f644175746f7363616c657212",
    "370a110a016412001a0022002a00320038004200121c0a180a0a4465706c6f796d656e741201641a07617070732f7631",
    "18031a04180020001a002200",
);
/// `kubectl autoscale deployment d --max=3` (kubectl 1.33 and 1.34)
pub(super) const HPA_V2: &str = concat!(
    "6b3873000a290a0e6175746f7363616c696e672f76321217486f72697a6f6e74616c506f644175746f7363616c657212",
    "370a110a016412001a0022002a00320038004200121c0a180a0a4465706c6f796d656e741201641a07617070732f7631",
    "18031a04180020001a002200",
);

/// `kubectl …` bodies in protobuf (kubectl 1.34; 1.32 sends the same bytes) and in JSON (kubectl
/// 1.31, which still sends JSON) for the same command, recorded against the mock server: the
/// decoded protobuf must equal the JSON without its `null`s.
pub(super) const SAME_AS_JSON: &[(&str, &str, &str)] = &[
    (
        "kubectl create deployment d0 --image=nginx --replicas=0 --port=8080",
        concat!(
            "6b3873000a150a07617070732f7631120a4465706c6f796d656e7412b5010a1d0a02643012001a0022002a00",
            "3200380042005a090a03617070120264301285010800120b0a090a03617070120264301a6c0a1b0a0012001a",
            "0022002a003200380042005a090a0361707012026430124d122f0a056e67696e7812056e67696e782a00320b",
            "0a00100018903f22002a0042006a007200800100880100900100a201001a00320042004a0052005800600068",
            "008201008a01009a0100c2010022020a00280038001a0c0800100018002000280038001a002200",
        ),
        r#"{"kind":"Deployment","apiVersion":"apps/v1","metadata":{"name":"d0","creationTimestamp":null,"labels":{"app":"d0"}},"spec":{"replicas":0,"selector":{"matchLabels":{"app":"d0"}},"template":{"metadata":{"creationTimestamp":null,"labels":{"app":"d0"}},"spec":{"containers":[{"name":"nginx","image":"nginx","ports":[{"containerPort":8080}],"resources":{}}]}},"strategy":{}},"status":{}}"#,
    ),
    (
        "kubectl create deployment d2 --image=busybox -- sleep 10",
        concat!(
            "6b3873000a150a07617070732f7631120a4465706c6f796d656e7412b7010a1d0a02643212001a0022002a00",
            "3200380042005a090a03617070120264321287010801120b0a090a03617070120264321a6e0a1b0a0012001a",
            "0022002a003200380042005a090a0361707012026432124f12310a0762757379626f78120762757379626f78",
            "1a05736c6565701a0231302a0042006a007200800100880100900100a201001a00320042004a005200580060",
            "0068008201008a01009a0100c2010022020a00280038001a0c0800100018002000280038001a002200",
        ),
        r#"{"kind":"Deployment","apiVersion":"apps/v1","metadata":{"name":"d2","creationTimestamp":null,"labels":{"app":"d2"}},"spec":{"replicas":1,"selector":{"matchLabels":{"app":"d2"}},"template":{"metadata":{"creationTimestamp":null,"labels":{"app":"d2"}},"spec":{"containers":[{"name":"busybox","image":"busybox","command":["sleep","10"],"resources":{}}]}},"strategy":{}},"status":{}}"#,
    ),
    (
        "kubectl create secret generic s2 --from-literal=empty= --from-literal=k=v --type=Opaque",
        concat!(
            "6b3873000a0c0a0276311206536563726574122f0a120a02733212001a0022002a0032003800420012090a05",
            "656d707479120012060a016b1201761a064f70617175651a002200",
        ),
        r#"{"kind":"Secret","apiVersion":"v1","metadata":{"name":"s2","creationTimestamp":null},"data":{"empty":"","k":"dg=="},"type":"Opaque"}"#,
    ),
    (
        "kubectl create configmap c2 --from-literal=k= --from-literal=z=1",
        concat!(
            "6b3873000a0f0a0276311209436f6e6669674d617012230a120a02633212001a0022002a0032003800420012",
            "050a016b120012060a017a1201311a002200",
        ),
        r#"{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"c2","creationTimestamp":null},"data":{"k":"","z":"1"}}"#,
    ),
    (
        "kubectl create service nodeport np --tcp=80:8080 --node-port=30080",
        concat!(
            "6b3873000a0d0a02763112075365727669636512670a1d0a026e7012001a0022002a003200380042005a090a",
            "0361707012026e7012420a1d0a0738302d38303830120354435018502207080010903f1a002880eb0112090a",
            "0361707012026e701a0022084e6f6465506f72743a00420052005a00600068001a020a001a002200",
        ),
        r#"{"kind":"Service","apiVersion":"v1","metadata":{"name":"np","creationTimestamp":null,"labels":{"app":"np"}},"spec":{"ports":[{"name":"80-8080","protocol":"TCP","port":80,"targetPort":8080,"nodePort":30080}],"selector":{"app":"np"},"type":"NodePort"},"status":{"loadBalancer":{}}}"#,
    ),
    (
        "kubectl create service loadbalancer lb --tcp=443:https",
        concat!(
            "6b3873000a0d0a02763112075365727669636512700a1d0a026c6212001a0022002a003200380042005a090a",
            "0361707012026c62124b0a220a093434332d6874747073120354435018bb03220b080110001a056874747073",
            "280012090a0361707012026c621a00220c4c6f616442616c616e6365723a00420052005a00600068001a020a",
            "001a002200",
        ),
        r#"{"kind":"Service","apiVersion":"v1","metadata":{"name":"lb","creationTimestamp":null,"labels":{"app":"lb"}},"spec":{"ports":[{"name":"443-https","protocol":"TCP","port":443,"targetPort":"https"}],"selector":{"app":"lb"},"type":"LoadBalancer"},"status":{"loadBalancer":{}}}"#,
    ),
    (
        "kubectl create service externalname en --external-name=example.com",
        concat!(
            "6b3873000a0d0a02763112075365727669636512570a1d0a02656e12001a0022002a003200380042005a090a",
            "036170701202656e123212090a036170701202656e1a00220c45787465726e616c4e616d653a004200520b65",
            "78616d706c652e636f6d5a00600068001a020a001a002200",
        ),
        r#"{"kind":"Service","apiVersion":"v1","metadata":{"name":"en","creationTimestamp":null,"labels":{"app":"en"}},"spec":{"selector":{"app":"en"},"type":"ExternalName","externalName":"example.com"},"status":{"loadBalancer":{}}}"#,
    ),
    (
        "kubectl create service clusterip hl --clusterip=None",
        concat!(
            "6b3873000a0d0a027631120753657276696365124d0a1d0a02686c12001a0022002a003200380042005a090a",
            "036170701202686c122812090a036170701202686c1a044e6f6e652209436c757374657249503a0042005200",
            "5a00600068001a020a001a002200",
        ),
        r#"{"kind":"Service","apiVersion":"v1","metadata":{"name":"hl","creationTimestamp":null,"labels":{"app":"hl"}},"spec":{"selector":{"app":"hl"},"clusterIP":"None","type":"ClusterIP"},"status":{"loadBalancer":{}}}"#,
    ),
    (
        "kubectl create job j2 --image=busybox -- echo hi",
        concat!(
            "6b3873000a0f0a0862617463682f763112034a6f621284010a120a026a3212001a0022002a00320038004200",
            "126432620a100a0012001a0022002a00320038004200124e122b0a026a32120762757379626f781a04656368",
            "6f1a0268692a0042006a007200800100880100900100a201001a054e65766572320042004a00520058006000",
            "68008201008a01009a0100c201001a082000280030003a001a002200",
        ),
        r#"{"kind":"Job","apiVersion":"batch/v1","metadata":{"name":"j2","creationTimestamp":null},"spec":{"template":{"metadata":{"creationTimestamp":null},"spec":{"containers":[{"name":"j2","image":"busybox","command":["echo","hi"],"resources":{}}],"restartPolicy":"Never"}}},"status":{}}"#,
    ),
    (
        "kubectl create cronjob c2 --image=busybox '--schedule=*/5 * * * *' --restart=Never -- date",
        concat!(
            "6b3873000a130a0862617463682f7631120743726f6e4a6f6212a0010a120a02633212001a0022002a003200",
            "380042001287010a0b2a2f35202a202a202a202a1a002a760a120a02633212001a0022002a00320038004200",
            "1260325e0a100a0012001a0022002a00320038004200124a12270a026332120762757379626f781a04646174",
            "652a0042006a007200800100880100900100a201001a054e65766572320042004a0052005800600068008201",
            "008a01009a0100c201001a001a002200",
        ),
        r#"{"kind":"CronJob","apiVersion":"batch/v1","metadata":{"name":"c2","creationTimestamp":null},"spec":{"schedule":"*/5 * * * *","jobTemplate":{"metadata":{"name":"c2","creationTimestamp":null},"spec":{"template":{"metadata":{"creationTimestamp":null},"spec":{"containers":[{"name":"c2","image":"busybox","command":["date"],"resources":{}}],"restartPolicy":"Never"}}}}},"status":{}}"#,
    ),
    (
        "kubectl create quota q2 --hard=cpu=1,memory=1Gi,pods=0 --scopes=BestEffort",
        concat!(
            "6b3873000a130a027631120d5265736f7572636551756f7461124e0a120a02713212001a0022002a00320038",
            "00420012360a0a0a0363707512030a01310a0f0a066d656d6f727912050a033147690a0b0a04706f64731203",
            "0a0130120a426573744566666f72741a001a002200",
        ),
        r#"{"kind":"ResourceQuota","apiVersion":"v1","metadata":{"name":"q2","creationTimestamp":null},"spec":{"hard":{"cpu":"1","memory":"1Gi","pods":"0"},"scopes":["BestEffort"]},"status":{}}"#,
    ),
    (
        "kubectl create priorityclass pc2 --value=0 --global-default=true --preemption-policy=Never --description=d",
        concat!(
            "6b3873000a250a147363686564756c696e672e6b38732e696f2f7631120d5072696f72697479436c61737312",
            "230a130a0370633212001a0022002a00320038004200100018012201642a054e657665721a002200",
        ),
        r#"{"kind":"PriorityClass","apiVersion":"scheduling.k8s.io/v1","metadata":{"name":"pc2","creationTimestamp":null},"value":0,"globalDefault":true,"description":"d","preemptionPolicy":"Never"}"#,
    ),
    (
        "kubectl create pdb p2 --selector=a=b --max-unavailable=50%",
        concat!(
            "6b3873000a200a09706f6c6963792f76311213506f6444697372757074696f6e42756467657412370a120a02",
            "703212001a0022002a00320038004200121512080a060a01611201621a09080110001a033530251a0a080018",
            "002000280030001a002200",
        ),
        r#"{"kind":"PodDisruptionBudget","apiVersion":"policy/v1","metadata":{"name":"p2","creationTimestamp":null},"spec":{"selector":{"matchLabels":{"a":"b"}},"maxUnavailable":"50%"},"status":{"disruptionsAllowed":0,"currentHealthy":0,"desiredHealthy":0,"expectedPods":0}}"#,
    ),
    (
        "kubectl create ingress i2 --class=nginx --rule=foo.com/=svc:http,tls=secret1 '--rule=bar.com/*=svc2:8080' --default-backend=def:80 --annotation=a=b",
        concat!(
            "6b3873000a1f0a146e6574776f726b696e672e6b38732e696f2f76311207496e677265737312a8010a1a0a02",
            "693212001a0022002a0032003800420062060a01611201621285010a0d220b0a0364656612040a0010501212",
            "0a07666f6f2e636f6d1207736563726574311a2c0a07666f6f2e636f6d12210a1f0a1d0a012f1211220f0a03",
            "73766312080a046874747010001a0545786163741a2b0a076261722e636f6d12200a1e0a1c0a012f120f220d",
            "0a047376633212050a0010903f1a0650726566697822056e67696e781a020a001a002200",
        ),
        r#"{"kind":"Ingress","apiVersion":"networking.k8s.io/v1","metadata":{"name":"i2","creationTimestamp":null,"annotations":{"a":"b"}},"spec":{"ingressClassName":"nginx","defaultBackend":{"service":{"name":"def","port":{"number":80}}},"tls":[{"hosts":["foo.com"],"secretName":"secret1"}],"rules":[{"host":"foo.com","http":{"paths":[{"path":"/","pathType":"Exact","backend":{"service":{"name":"svc","port":{"name":"http"}}}}]}},{"host":"bar.com","http":{"paths":[{"path":"/","pathType":"Prefix","backend":{"service":{"name":"svc2","port":{"number":8080}}}}]}}]},"status":{"loadBalancer":{}}}"#,
    ),
    (
        "kubectl create role r2 --verb=get,list --resource=pods,deployments.apps --resource-name=x",
        concat!(
            "6b3873000a240a1c726261632e617574686f72697a6174696f6e2e6b38732e696f2f76311204526f6c65124f",
            "0a120a02723212001a0022002a0032003800420012160a036765740a046c69737412001a04706f6473220178",
            "12210a036765740a046c6973741204617070731a0b6465706c6f796d656e74732201781a002200",
        ),
        r#"{"kind":"Role","apiVersion":"rbac.authorization.k8s.io/v1","metadata":{"name":"r2","creationTimestamp":null},"rules":[{"verbs":["get","list"],"apiGroups":[""],"resources":["pods"],"resourceNames":["x"]},{"verbs":["get","list"],"apiGroups":["apps"],"resources":["deployments"],"resourceNames":["x"]}]}"#,
    ),
    (
        "kubectl create clusterrole cr2 --verb=get '--non-resource-url=/logs/*'",
        concat!(
            "6b3873000a2b0a1c726261632e617574686f72697a6174696f6e2e6b38732e696f2f7631120b436c75737465",
            "72526f6c6512250a130a0363723212001a0022002a00320038004200120e0a036765742a072f6c6f67732f2a",
            "1a002200",
        ),
        r#"{"kind":"ClusterRole","apiVersion":"rbac.authorization.k8s.io/v1","metadata":{"name":"cr2","creationTimestamp":null},"rules":[{"verbs":["get"],"nonResourceURLs":["/logs/*"]}]}"#,
    ),
    (
        "kubectl create clusterrole agg --aggregation-rule=foo=bar",
        concat!(
            "6b3873000a2b0a1c726261632e617574686f72697a6174696f6e2e6b38732e696f2f7631120b436c75737465",
            "72526f6c6512250a130a0361676712001a0022002a003200380042001a0e0a0c0a0a0a03666f6f1203626172",
            "1a002200",
        ),
        r#"{"kind":"ClusterRole","apiVersion":"rbac.authorization.k8s.io/v1","metadata":{"name":"agg","creationTimestamp":null},"rules":null,"aggregationRule":{"clusterRoleSelectors":[{"matchLabels":{"foo":"bar"}}]}}"#,
    ),
    (
        "kubectl create clusterrolebinding crb --clusterrole=cr --group=g --serviceaccount=default:sa",
        concat!(
            "6b3873000a320a1c726261632e617574686f72697a6174696f6e2e6b38732e696f2f76311212436c75737465",
            "72526f6c6542696e64696e67128d010a130a0363726212001a0022002a0032003800420012270a0547726f75",
            "701219726261632e617574686f72697a6174696f6e2e6b38732e696f1a01672200121f0a0e53657276696365",
            "4163636f756e7412001a027361220764656661756c741a2c0a19726261632e617574686f72697a6174696f6e",
            "2e6b38732e696f120b436c7573746572526f6c651a0263721a002200",
        ),
        r#"{"kind":"ClusterRoleBinding","apiVersion":"rbac.authorization.k8s.io/v1","metadata":{"name":"crb","creationTimestamp":null},"subjects":[{"kind":"Group","apiGroup":"rbac.authorization.k8s.io","name":"g"},{"kind":"ServiceAccount","name":"sa","namespace":"default"}],"roleRef":{"apiGroup":"rbac.authorization.k8s.io","kind":"ClusterRole","name":"cr"}}"#,
    ),
    (
        "kubectl create rolebinding rb2 --clusterrole=cr --serviceaccount=default:sa",
        concat!(
            "6b3873000a2b0a1c726261632e617574686f72697a6174696f6e2e6b38732e696f2f7631120b526f6c654269",
            "6e64696e6712640a130a0372623212001a0022002a00320038004200121f0a0e536572766963654163636f75",
            "6e7412001a027361220764656661756c741a2c0a19726261632e617574686f72697a6174696f6e2e6b38732e",
            "696f120b436c7573746572526f6c651a0263721a002200",
        ),
        r#"{"kind":"RoleBinding","apiVersion":"rbac.authorization.k8s.io/v1","metadata":{"name":"rb2","creationTimestamp":null},"subjects":[{"kind":"ServiceAccount","name":"sa","namespace":"default"}],"roleRef":{"apiGroup":"rbac.authorization.k8s.io","kind":"ClusterRole","name":"cr"}}"#,
    ),
    (
        "kubectl create token sa --duration=1h --audience=a --audience=b",
        concat!(
            "6b3873000a280a1861757468656e7469636174696f6e2e6b38732e696f2f7631120c546f6b656e5265717565",
            "737412230a100a0012001a0022002a0032003800420012090a01610a016220901c1a040a0012001a002200",
        ),
        r#"{"kind":"TokenRequest","apiVersion":"authentication.k8s.io/v1","metadata":{"creationTimestamp":null},"spec":{"audiences":["a","b"],"expirationSeconds":3600,"boundObjectRef":null},"status":{"token":"","expirationTimestamp":null}}"#,
    ),
    (
        "kubectl create token sa --bound-object-kind=Pod --bound-object-name=p0 --bound-object-uid=123",
        concat!(
            "6b3873000a280a1861757468656e7469636174696f6e2e6b38732e696f2f7631120c546f6b656e5265717565",
            "7374122e0a100a0012001a0022002a0032003800420012141a120a03506f64120276311a0270302203313233",
            "1a040a0012001a002200",
        ),
        r#"{"kind":"TokenRequest","apiVersion":"authentication.k8s.io/v1","metadata":{"creationTimestamp":null},"spec":{"audiences":null,"expirationSeconds":null,"boundObjectRef":{"kind":"Pod","apiVersion":"v1","name":"p0","uid":"123"}},"status":{"token":"","expirationTimestamp":null}}"#,
    ),
    (
        "kubectl auth can-i list pods --subresource=log -n kube-system",
        concat!(
            "6b3873000a320a17617574686f72697a6174696f6e2e6b38732e696f2f7631121753656c665375626a656374",
            "41636365737352657669657712440a100a0012001a0022002a0032003800420012260a240a0b6b7562652d73",
            "797374656d12046c6973741a0022002a04706f647332036c6f673a001a08080012001a0020001a002200",
        ),
        r#"{"kind":"SelfSubjectAccessReview","apiVersion":"authorization.k8s.io/v1","metadata":{"creationTimestamp":null},"spec":{"resourceAttributes":{"namespace":"kube-system","verb":"list","resource":"pods","subresource":"log"}},"status":{"allowed":false}}"#,
    ),
    (
        "kubectl auth can-i '*' '*' --all-namespaces",
        concat!(
            "6b3873000a320a17617574686f72697a6174696f6e2e6b38732e696f2f7631121753656c665375626a656374",
            "41636365737352657669657712300a100a0012001a0022002a0032003800420012120a100a0012012a1a0022",
            "002a012a32003a001a08080012001a0020001a002200",
        ),
        r#"{"kind":"SelfSubjectAccessReview","apiVersion":"authorization.k8s.io/v1","metadata":{"creationTimestamp":null},"spec":{"resourceAttributes":{"verb":"*","resource":"*"}},"status":{"allowed":false}}"#,
    ),
    (
        "kubectl auth can-i get /logs",
        concat!(
            "6b3873000a320a17617574686f72697a6174696f6e2e6b38732e696f2f7631121753656c665375626a656374",
            "416363657373526576696577122c0a100a0012001a0022002a00320038004200120e120c0a052f6c6f677312",
            "036765741a08080012001a0020001a002200",
        ),
        r#"{"kind":"SelfSubjectAccessReview","apiVersion":"authorization.k8s.io/v1","metadata":{"creationTimestamp":null},"spec":{"nonResourceAttributes":{"path":"/logs","verb":"get"}},"status":{"allowed":false}}"#,
    ),
    (
        "kubectl auth can-i --list",
        concat!(
            "6b3873000a310a17617574686f72697a6174696f6e2e6b38732e696f2f7631121653656c665375626a656374",
            "52756c657352657669657712230a100a0012001a0022002a0032003800420012090a0764656661756c741a04",
            "180022001a002200",
        ),
        r#"{"kind":"SelfSubjectRulesReview","apiVersion":"authorization.k8s.io/v1","metadata":{"creationTimestamp":null},"spec":{"namespace":"default"},"status":{"resourceRules":null,"nonResourceRules":null,"incomplete":false}}"#,
    ),
    (
        "kubectl create secret docker-registry reg2 --docker-server=s --docker-username=u --docker-password=p --docker-email=e@x",
        concat!(
            "6b3873000a0c0a02763112065365637265741298010a140a047265673212001a0022002a0032003800420012",
            "600a112e646f636b6572636f6e6669676a736f6e124b7b226175746873223a7b2273223a7b22757365726e61",
            "6d65223a2275222c2270617373776f7264223a2270222c22656d61696c223a22654078222c2261757468223a",
            "2264547077227d7d7d1a1e6b756265726e657465732e696f2f646f636b6572636f6e6669676a736f6e1a0022",
            "00",
        ),
        r#"{"kind":"Secret","apiVersion":"v1","metadata":{"name":"reg2","creationTimestamp":null},"data":{".dockerconfigjson":"eyJhdXRocyI6eyJzIjp7InVzZXJuYW1lIjoidSIsInBhc3N3b3JkIjoicCIsImVtYWlsIjoiZUB4IiwiYXV0aCI6ImRUcHcifX19"},"type":"kubernetes.io/dockerconfigjson"}"#,
    ),
];
/// `kubectl autoscale deployment d --min=2 --max=5 --cpu-percent=80` (kubectl 1.32)
pub(super) const HPA_V1_CPU: &str = concat!(
    "6b3873000a290a0e6175746f7363616c696e672f76311217486f72697a6f6e74616c506f644175746f7363616c657212",
    "3b0a110a016412001a0022002a0032003800420012200a180a0a4465706c6f796d656e741201641a07617070732f7631",
    "1002180520501a04180020001a002200",
);
/// `kubectl autoscale deployment d --min=2 --max=5 --cpu-percent=80` (kubectl 1.34)
pub(super) const HPA_V2_CPU: &str = concat!(
    "6b3873000a290a0e6175746f7363616c696e672f76321217486f72697a6f6e74616c506f644175746f7363616c657212",
    "5d0a110a016412001a0022002a0032003800420012420a180a0a4465706c6f796d656e741201641a07617070732f7631",
    "1002180522220a085265736f7572636522160a03637075120f0a0b5574696c697a6174696f6e20501a04180020001a00",
    "2200",
);
/// The JSON kubectl 1.31 sends for the same autoscale command (autoscaling/v1).
pub(super) const HPA_V1_CPU_JSON: &str = r#"{"kind":"HorizontalPodAutoscaler","apiVersion":"autoscaling/v1","metadata":{"name":"d","creationTimestamp":null},"spec":{"scaleTargetRef":{"kind":"Deployment","name":"d","apiVersion":"apps/v1"},"minReplicas":2,"maxReplicas":5,"targetCPUUtilizationPercentage":80},"status":{"currentReplicas":0,"desiredReplicas":0}}"#;
