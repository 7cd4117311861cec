//! The registry: create, read, update, patch, delete and watch for every resource, built-in or
//! custom, with the semantics clients rely on (uid, generation, resourceVersion preconditions,
//! finalizers and graceful deletion, defaults and validation, dry runs). The HTTP handlers and
//! the in-process controllers both go through it, so every write takes the same path.

use std::sync::Arc;

use bytes::Bytes;
use maestro_api::resources::{self, ResourceInfo};
use maestro_api::selector::{FieldSelector, LabelSelector};
use maestro_api::{ApiError, Cause, meta};
use maestro_store::{Backend, CacheWatch, Revision, StoreError, WatchCache};
use parking_lot::RwLock;
use serde_json::{Map, Value, json};

use crate::conversion;
use crate::crd::{self, CustomResources};
use crate::node_ports;
use crate::object::{self, StoredObject};
use crate::service_ips::{self, Cidr};

/// A served resource: its description and, for custom resources, what their CRD says.
#[derive(Debug, Clone)]
pub struct Resource {
    pub info: ResourceInfo,
    pub custom: Option<crd::CustomVersion>,
}

impl Resource {
    /// The shared description of a built-in resource (built once: requests resolve their
    /// resource on every call, and cloning the description would allocate each time).
    pub fn builtin(info: &ResourceInfo) -> Arc<Resource> {
        static BUILTINS: std::sync::OnceLock<Vec<Arc<Resource>>> = std::sync::OnceLock::new();
        let all = BUILTINS.get_or_init(|| {
            resources::builtins()
                .iter()
                .map(|info| {
                    Arc::new(Resource {
                        info: info.clone(),
                        custom: None,
                    })
                })
                .collect()
        });
        all.iter()
            .find(|r| {
                r.info.group == info.group
                    && r.info.version == info.version
                    && r.info.plural == info.plural
            })
            .cloned()
            .unwrap_or_else(|| {
                Arc::new(Resource {
                    info: info.clone(),
                    custom: None,
                })
            })
    }

    /// apiVersion of the stored representation.
    pub fn storage_api_version(&self) -> String {
        if self.custom.is_some() {
            // Custom resources are stored in the version they were written in and relabelled.
            return self.info.api_version();
        }
        if self.info.storage_group.is_empty() {
            self.info.storage_version.clone()
        } else {
            format!("{}/{}", self.info.storage_group, self.info.storage_version)
        }
    }

    /// Kind name used by defaults and validation (the stored kind).
    fn storage_group(&self) -> &str {
        &self.info.storage_group
    }
}

/// How unknown fields in a request are treated (`fieldValidation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FieldValidation {
    Ignore,
    #[default]
    Warn,
    Strict,
}

/// Options shared by create, update and patch.
#[derive(Debug, Clone, Default)]
pub struct WriteOptions {
    pub dry_run: bool,
    pub field_validation: FieldValidation,
    pub field_manager: Option<String>,
    /// Keys the request body repeated (found while decoding it; reported like unknown fields).
    pub duplicate_fields: Vec<String>,
    /// Who makes a non-apply write, for `managedFields`: `fieldManager`, or the client's
    /// User-Agent product as Kubernetes defaults it.
    pub manager: Option<String>,
    /// The write is a server-side apply, which records its own managed fields.
    pub apply: bool,
}

impl WriteOptions {
    fn manager_name(&self) -> &str {
        self.field_manager
            .as_deref()
            .or(self.manager.as_deref())
            .unwrap_or("unknown")
    }
}

/// What happens to dependents when an owner is deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Propagation {
    Background,
    Foreground,
    Orphan,
}

/// Options of a delete (from the body's DeleteOptions or the query).
#[derive(Debug, Clone, Default)]
pub struct DeleteOptions {
    pub propagation: Option<Propagation>,
    pub grace_period_seconds: Option<i64>,
    pub precondition_uid: Option<String>,
    pub precondition_resource_version: Option<String>,
    pub dry_run: bool,
}

/// Filters of a list or watch.
#[derive(Debug, Clone, Default)]
pub struct ListOptions {
    pub labels: LabelSelector,
    pub fields: FieldSelector,
}

/// The result of a write: the object as stored (or as it would be, for dry runs), warnings for
/// the `Warning` header, and whether it was created.
#[derive(Debug, Clone)]
pub struct WriteResult {
    pub object: Value,
    pub warnings: Vec<String>,
    pub created: bool,
}

/// The outcome of a delete: the object, and whether it is gone or only marked for deletion
/// (finalizers, graceful pod termination, namespace cleanup).
#[derive(Debug, Clone)]
pub struct Deleted {
    pub object: Value,
    pub removed: bool,
}

impl Deleted {
    fn removed(object: Value) -> Self {
        Deleted {
            object,
            removed: true,
        }
    }

    fn pending(object: Value) -> Self {
        Deleted {
            object,
            removed: false,
        }
    }
}

fn is_core_service(res: &Resource) -> bool {
    res.custom.is_none() && res.info.group.is_empty() && res.info.kind == "Service"
}

/// Allocation records (ClusterIPs, node ports) created in the store for a Service being
/// written; released on drop unless [`Reservation::keep`] says the Service was written.
struct Reservation {
    backend: Arc<dyn Backend>,
    keys: Vec<String>,
}

impl Reservation {
    fn new(backend: Arc<dyn Backend>) -> Self {
        Reservation {
            backend,
            keys: Vec::new(),
        }
    }

    fn keep(mut self) {
        self.keys.clear();
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let keys = std::mem::take(&mut self.keys);
        if !keys.is_empty() {
            let backend = self.backend.clone();
            tokio::spawn(async move {
                for key in keys {
                    let _ = backend.delete(&key, None).await;
                }
            });
        }
    }
}

/// Namespaces that can never be deleted (Kubernetes' NamespaceLifecycle admission).
const IMMORTAL_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public"];

/// Most attempts of a read-modify-write that keeps losing races.
const MAX_UPDATE_ATTEMPTS: usize = 16;

/// Largest object the store accepts (Kubernetes' etcd default limit is 1.5 MiB).
pub const MAX_OBJECT_BYTES: usize = 3 * 1024 * 1024;

fn store_error(err: StoreError) -> ApiError {
    match err {
        StoreError::Compacted { .. } => ApiError::gone("too old resource version"),
        other => ApiError::internal(other.to_string()),
    }
}

/// The shared registry.
pub struct Registry {
    backend: Arc<dyn Backend>,
    cache: Arc<WatchCache<StoredObject>>,
    custom: RwLock<Option<Arc<CustomResources>>>,
    service_cidr: Cidr,
    /// Bounds concurrent admission (decode, defaults, validation, encoding) to all cores but
    /// one, so that reads are not queued behind a burst of writes.
    admission: tokio::sync::Semaphore,
    /// Serializes Service creation so that two Services never pick the same ClusterIP.
    service_ips: tokio::sync::Mutex<()>,
    /// tolerationSeconds of the not-ready and unreachable tolerations every pod gets.
    toleration_seconds: parking_lot::RwLock<DefaultTolerationSeconds>,
    /// Pods bound through [`Registry::bind_pod`] since start (`scheduler_pods_bound_total`).
    bindings: std::sync::atomic::AtomicU64,
    /// Serializes creations in namespaces with ResourceQuotas (see `quota`).
    quota_lock: tokio::sync::Mutex<()>,
}

/// The DefaultTolerationSeconds admission plugin's settings: how long pods stay bound to a
/// node that is not ready or unreachable before the node lifecycle controller evicts them.
#[derive(Debug, Clone, Copy)]
pub struct DefaultTolerationSeconds {
    pub not_ready: i64,
    pub unreachable: i64,
}

impl Default for DefaultTolerationSeconds {
    /// Shorter than Kubernetes' 300 s, so that with the 12 s node grace period the pods of a
    /// lost node are replaced within 30 s.
    fn default() -> Self {
        DefaultTolerationSeconds {
            not_ready: 8,
            unreachable: 8,
        }
    }
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").finish_non_exhaustive()
    }
}

/// The clock and random sources of a write, decided by the caller so that store writes stay
/// deterministic.
fn now() -> jiff::Timestamp {
    jiff::Timestamp::now()
}

fn new_uid() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn random_suffix() -> [u8; 5] {
    rand::random()
}

impl Registry {
    /// Build the registry over a backend: loads the watch cache.
    pub async fn new(
        backend: Arc<dyn Backend>,
        service_cidr: Cidr,
    ) -> Result<Arc<Registry>, StoreError> {
        let decode: maestro_store::watch_cache::DecodeFn<StoredObject> = Arc::new(object::decode);
        // The cache follows the whole keyspace so that its revision keeps up with every write,
        // including records outside the objects (ClusterIP allocations); it indexes only the
        // objects under /registry/ (`object::decode` skips the rest).
        let cache = WatchCache::start(backend.clone(), "/", decode, 10_000).await?;
        let registry = Arc::new(Registry {
            backend,
            cache,
            custom: RwLock::new(None),
            service_cidr,
            admission: tokio::sync::Semaphore::new(
                std::thread::available_parallelism()
                    .map_or(1, |n| n.get().saturating_sub(1).max(1)),
            ),
            service_ips: tokio::sync::Mutex::new(()),
            toleration_seconds: parking_lot::RwLock::new(DefaultTolerationSeconds::default()),
            bindings: std::sync::atomic::AtomicU64::new(0),
            quota_lock: tokio::sync::Mutex::new(()),
        });
        registry.clone().spawn_crd_tracker();
        Ok(registry)
    }

    /// Pods bound by the scheduler since this server started.
    pub fn bindings(&self) -> u64 {
        self.bindings.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Set the tolerationSeconds that DefaultTolerationSeconds admission gives pods.
    pub fn set_default_toleration_seconds(&self, seconds: DefaultTolerationSeconds) {
        *self.toleration_seconds.write() = seconds;
    }

    /// Kubernetes' DefaultTolerationSeconds admission: a pod that does not tolerate the
    /// not-ready or unreachable NoExecute taint gets a toleration of it for a while.
    fn admit_default_tolerations(&self, res: &Resource, pod: &mut Value) {
        if res.custom.is_some() || res.info.kind != "Pod" || !res.info.group.is_empty() {
            return;
        }
        let seconds = *self.toleration_seconds.read();
        let tolerations = pod["spec"]["tolerations"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let tolerated = |key: &str| {
            tolerations.iter().any(|t| {
                let k = t["key"].as_str().unwrap_or_default();
                let effect = t["effect"].as_str().unwrap_or_default();
                (k == key || k.is_empty()) && (effect.is_empty() || effect == "NoExecute")
            })
        };
        let mut added = tolerations.clone();
        for (key, seconds) in [
            ("node.kubernetes.io/not-ready", seconds.not_ready),
            ("node.kubernetes.io/unreachable", seconds.unreachable),
        ] {
            if !tolerated(key) {
                added.push(
                    json!({"key": key, "operator": "Exists", "effect": "NoExecute",
                    "tolerationSeconds": seconds}),
                );
            }
        }
        if added.len() != tolerations.len() && pod["spec"].is_object() {
            pod["spec"]["tolerations"] = json!(added);
        }
    }

    /// Kubernetes' Priority admission: a pod's `priorityClassName` must name a PriorityClass,
    /// whose value and preemption policy the pod takes; without one, the class marked
    /// `globalDefault` applies if there is one. (The system classes are resolved by the pod
    /// defaults.)
    fn admit_priority(&self, res: &Resource, name: &str, pod: &mut Value) -> Result<(), ApiError> {
        if res.custom.is_some() || res.info.kind != "Pod" || !res.info.group.is_empty() {
            return Ok(());
        }
        let classes = resources::find_builtin("scheduling.k8s.io", "v1", "priorityclasses")
            .expect("built in");
        let requested = pod["spec"]["priorityClassName"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let class = if requested.is_empty() {
            let (all, _) = self.cache.list(&classes.storage_prefix());
            all.iter()
                .map(|c| c.value())
                .find(|c| c["globalDefault"] == true)
        } else if requested.starts_with("system-") {
            return Ok(());
        } else {
            match self.cache.get(&classes.key(None, &requested)) {
                Some((class, _)) => Some(class.value()),
                None => {
                    return Err(ApiError::forbidden(format!(
                        "pods \"{name}\" is forbidden: no PriorityClass with name {requested} was found"
                    )));
                }
            }
        };
        if let Some(class) = class {
            pod["spec"]["priorityClassName"] = class["metadata"]["name"].clone();
            pod["spec"]["priority"] = class["value"].clone();
            pod["spec"]["preemptionPolicy"] = class
                .get("preemptionPolicy")
                .cloned()
                .unwrap_or_else(|| json!("PreemptLowerPriority"));
        }
        Ok(())
    }

    /// DefaultIngressClass admission: an Ingress created without a class (field or the old
    /// annotation) gets the default IngressClass, when exactly one is marked default.
    fn admit_default_ingress_class(&self, res: &Resource, ingress: &mut Value) {
        if res.custom.is_some()
            || res.info.kind != "Ingress"
            || res.info.group != "networking.k8s.io"
        {
            return;
        }
        let named = ingress
            .pointer("/spec/ingressClassName")
            .is_some_and(|n| !n.is_null());
        let annotated = ingress
            .pointer("/metadata/annotations/kubernetes.io~1ingress.class")
            .is_some();
        if named || annotated {
            return;
        }
        let defaults = self.default_classes(
            "networking.k8s.io",
            "ingressclasses",
            &["ingressclass.kubernetes.io/is-default-class"],
        );
        if let [name] = defaults.as_slice() {
            set_spec_field(ingress, "ingressClassName", name.clone());
        }
    }

    /// DefaultStorageClass admission: a PersistentVolumeClaim created with no class at all (not
    /// the empty class, which asks for none) gets the default StorageClass.
    fn admit_default_storage_class(&self, res: &Resource, claim: &mut Value) {
        if res.custom.is_some() || res.info.kind != "PersistentVolumeClaim" {
            return;
        }
        if claim
            .pointer("/spec/storageClassName")
            .is_some_and(|n| !n.is_null())
        {
            return;
        }
        let default = self.default_classes(
            "storage.k8s.io",
            "storageclasses",
            &[
                "storageclass.kubernetes.io/is-default-class",
                "storageclass.beta.kubernetes.io/is-default-class",
            ],
        );
        if let Some(name) = default.into_iter().next() {
            set_spec_field(claim, "storageClassName", name);
        }
    }

    /// The names of the classes marked default by one of `annotations`, newest first (with
    /// several, Kubernetes gives claims the newest since 1.26; Ingresses get a class only when
    /// there is exactly one).
    fn default_classes(&self, group: &str, plural: &str, annotations: &[&str]) -> Vec<Value> {
        let classes = resources::find_builtin(group, "v1", plural).expect("built in");
        let (all, _) = self.cache.list(&classes.storage_prefix());
        let mut defaults: Vec<Value> = all
            .iter()
            .map(|c| c.value())
            .filter(|c| {
                annotations
                    .iter()
                    .any(|a| c["metadata"]["annotations"][*a] == "true")
            })
            .collect();
        let created = |c: &Value| {
            c["metadata"]["creationTimestamp"]
                .as_str()
                .map(String::from)
        };
        defaults.sort_by(|a, b| {
            created(b).cmp(&created(a)).then_with(|| {
                a["metadata"]["name"]
                    .as_str()
                    .cmp(&b["metadata"]["name"].as_str())
            })
        });
        defaults
            .into_iter()
            .map(|c| c["metadata"]["name"].clone())
            .collect()
    }

    pub fn service_cidr(&self) -> Cidr {
        self.service_cidr
    }

    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    pub fn cache(&self) -> &Arc<WatchCache<StoredObject>> {
        &self.cache
    }

    /// Forget the custom resource index whenever a CRD changes; it is rebuilt on next use.
    fn spawn_crd_tracker(self: Arc<Self>) {
        let crds =
            resources::find_builtin("apiextensions.k8s.io", "v1", "customresourcedefinitions")
                .expect("CRDs are built in")
                .storage_prefix();
        let weak = Arc::downgrade(&self);
        let mut watch = match self.cache.watch(&crds, Some(self.cache.revision())) {
            Ok(watch) => watch,
            Err(err) => {
                tracing::error!(%err, "cannot watch CRDs");
                return;
            }
        };
        tokio::spawn(async move {
            loop {
                let result = watch.next().await;
                let Some(registry) = weak.upgrade() else {
                    return;
                };
                *registry.custom.write() = None;
                if result.is_err() {
                    match registry.cache.watch(&crds, Some(registry.cache.revision())) {
                        Ok(w) => watch = w,
                        Err(_) => return,
                    }
                }
            }
        });
    }

    /// The custom resources currently defined by established CRDs.
    pub fn custom_resources(&self) -> Arc<CustomResources> {
        if let Some(index) = self.custom.read().clone() {
            return index;
        }
        let crds =
            resources::find_builtin("apiextensions.k8s.io", "v1", "customresourcedefinitions")
                .expect("CRDs are built in")
                .storage_prefix();
        let (items, _) = self.cache.list(&crds);
        let index = Arc::new(CustomResources::from_crds(items.iter().map(|o| o.value())));
        *self.custom.write() = Some(index.clone());
        index
    }

    /// The resource served at group/version/plural.
    pub fn resolve(&self, group: &str, version: &str, plural: &str) -> Option<Arc<Resource>> {
        if let Some(info) = resources::find_builtin(group, version, plural) {
            return Some(Resource::builtin(info));
        }
        self.custom_resources().find(group, version, plural)
    }

    /// Like [`Registry::resolve`], but first lets the cache catch up so that a CRD created a
    /// moment ago is visible.
    pub async fn resolve_fresh(
        &self,
        group: &str,
        version: &str,
        plural: &str,
    ) -> Option<Arc<Resource>> {
        if let Some(found) = self.resolve(group, version, plural) {
            return Some(found);
        }
        self.cache.fresh().await.ok()?;
        *self.custom.write() = None;
        self.resolve(group, version, plural)
    }

    /// The resource of a stored key, in its storage version (for controllers scanning the cache).
    pub fn resource_for_key(&self, key: &str) -> Option<Arc<Resource>> {
        let (group, plural) = object::key_resource(key)?;
        if let Some(info) = resources::builtins().iter().find(|r| {
            r.storage_group == group
                && r.plural == plural
                && r.group == r.storage_group
                && r.version == r.storage_version
        }) {
            return Some(Resource::builtin(info));
        }
        self.custom_resources().find_storage(group, plural)
    }

    fn namespace_key(name: &str) -> String {
        resources::find_builtin("", "v1", "namespaces")
            .expect("namespaces are built in")
            .key(None, name)
    }

    /// Parse a stored object and convert it to the version the client asked for.
    pub fn present(&self, res: &Resource, obj: &StoredObject) -> Value {
        self.present_value(res, obj.value())
    }

    fn present_value(&self, res: &Resource, value: Value) -> Value {
        let from = value
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let to = res.info.api_version();
        if from == to {
            value
        } else {
            conversion::convert(value, &from, &to)
        }
    }

    /// Read one object.
    pub async fn get(
        &self,
        res: &Resource,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Value, ApiError> {
        let stored = self.get_stored(res, namespace, name).await?;
        Ok(self.present(res, &stored))
    }

    /// Read one object as cached.
    pub async fn get_stored(
        &self,
        res: &Resource,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Arc<StoredObject>, ApiError> {
        self.cache.fresh().await.map_err(store_error)?;
        let key = res.info.key(namespace, name);
        self.cache
            .get(&key)
            .map(|(obj, _)| obj)
            .ok_or_else(|| ApiError::not_found(&res.info.group, &res.info.plural, name))
    }

    /// Objects matching the selectors, with the list's revision.
    pub async fn list(
        &self,
        res: &Resource,
        namespace: Option<&str>,
        opts: &ListOptions,
    ) -> Result<(Vec<Arc<StoredObject>>, Revision), ApiError> {
        self.check_field_selector(res, &opts.fields)?;
        self.cache.fresh().await.map_err(store_error)?;
        let prefix = res.info.namespace_prefix(namespace);
        let (items, revision) = match opts.fields.exact("metadata.name") {
            // A single-name selector (kubectl wait, delete --wait) is one lookup.
            Some(name)
                if res.info.namespaced() == namespace.is_some() || !res.info.namespaced() =>
            {
                let key = format!("{prefix}{name}");
                let rev = self.cache.revision();
                (
                    self.cache
                        .get(&key)
                        .map(|(o, _)| vec![o])
                        .unwrap_or_default(),
                    rev,
                )
            }
            _ => self.cache.list(&prefix),
        };
        let items = items.into_iter().filter(|o| matches(o, opts)).collect();
        Ok((items, revision))
    }

    /// Reject field selectors on fields the resource does not index, as Kubernetes does.
    pub fn check_field_selector(
        &self,
        res: &Resource,
        fields: &FieldSelector,
    ) -> Result<(), ApiError> {
        let allowed = object::selectable_fields(&res.info.storage_group, &res.info.plural);
        for req in &fields.requirements {
            let field = req.field.as_str();
            if field != "metadata.name"
                && field != "metadata.namespace"
                && !allowed.contains(&field)
            {
                return Err(ApiError::bad_request(format!(
                    "field label not supported: {field}"
                )));
            }
        }
        Ok(())
    }

    /// Start a watch. `from = None` begins with the current objects as ADDED events.
    pub fn watch(
        &self,
        res: &Resource,
        namespace: Option<&str>,
        opts: &ListOptions,
        from: Option<Revision>,
    ) -> Result<CacheWatch<StoredObject>, ApiError> {
        self.check_field_selector(res, &opts.fields)?;
        let mut prefix = res.info.namespace_prefix(namespace);
        if let Some(name) = opts.fields.exact("metadata.name")
            && (namespace.is_some() || !res.info.namespaced())
        {
            prefix.push_str(name);
        }
        self.cache.watch(&prefix, from).map_err(|err| match err {
            StoreError::Compacted { requested, .. } => ApiError::gone(format!(
                "too old resource version: {requested} ({})",
                self.cache.revision()
            )),
            other => store_error(other),
        })
    }

    /// Normalize a request body into the stored form: check apiVersion/kind, decode through the
    /// typed schema (or the CRD schema), apply the unknown-field policy, convert to the storage
    /// version and apply defaults.
    fn admit_body(
        &self,
        res: &Resource,
        mut body: Value,
        opts: &WriteOptions,
        warnings: &mut Vec<String>,
    ) -> Result<Value, ApiError> {
        let Some(map) = body.as_object_mut() else {
            return Err(ApiError::bad_request(format!(
                "the body of the request must be a {} object",
                res.info.kind
            )));
        };
        let expected_version = res.info.api_version();
        match map.get("apiVersion").and_then(Value::as_str) {
            None | Some("") => {
                map.insert("apiVersion".into(), json!(expected_version));
            }
            Some(v) if v == expected_version => {}
            Some(v) => {
                return Err(ApiError::bad_request(format!(
                    "the API version in the data ({v}) does not match the expected API version ({expected_version})"
                )));
            }
        }
        match map.get("kind").and_then(Value::as_str) {
            None | Some("") => {
                map.insert("kind".into(), json!(res.info.kind));
            }
            Some(k) if k == res.info.kind => {}
            Some(k) => {
                return Err(ApiError::bad_request(format!(
                    "the kind in the data ({k}) does not match the expected kind ({})",
                    res.info.kind
                )));
            }
        }
        let (normalized, unknown) = match &res.custom {
            Some(custom) => custom.admit(body)?,
            None => match maestro_api::codec::decode(
                &res.info.group,
                &res.info.version,
                &res.info.kind,
                body.clone(),
            ) {
                Some(Ok(decoded)) => (decoded.object, decoded.unknown_fields),
                Some(Err(err)) => return Err(ApiError::bad_request(err.to_string())),
                None => (body, Vec::new()),
            },
        };
        let problems: Vec<String> = unknown
            .iter()
            .map(|f| format!("unknown field \"{f}\""))
            .chain(
                opts.duplicate_fields
                    .iter()
                    .map(|f| format!("duplicate field \"{f}\"")),
            )
            .collect();
        if !problems.is_empty() {
            match opts.field_validation {
                FieldValidation::Strict => {
                    return Err(ApiError::bad_request(format!(
                        "strict decoding error: {}",
                        problems.join(", ")
                    )));
                }
                FieldValidation::Warn => warnings.extend(problems),
                FieldValidation::Ignore => {}
            }
        }
        let mut stored = self.to_storage(res, normalized);
        if res.custom.is_none() {
            conversion::fold_write_only_fields(
                &res.info.storage_group,
                &res.info.kind,
                &mut stored,
            );
        }
        Ok(stored)
    }

    fn to_storage(&self, res: &Resource, value: Value) -> Value {
        let from = res.info.api_version();
        let to = res.storage_api_version();
        conversion::convert(value, &from, &to)
    }

    fn validate(&self, res: &Resource, obj: &Value, old: Option<&Value>) -> Result<(), ApiError> {
        let mut causes = if res.custom.is_some() {
            crd::validate_meta(obj, old, res.info.namespaced())
        } else {
            maestro_api::validation::validate(
                res.storage_group(),
                &res.info.kind,
                obj,
                old,
                res.info.namespaced(),
            )
        };
        if let Some(custom) = &res.custom {
            causes.extend(custom.validate(obj));
        }
        if causes.is_empty() {
            Ok(())
        } else {
            Err(ApiError::invalid(
                &res.info.group,
                &res.info.kind,
                meta::name(obj),
                causes,
            ))
        }
    }

    /// Namespaced objects need an existing namespace that is not being deleted.
    async fn check_namespace(
        &self,
        res: &Resource,
        namespace: Option<&str>,
    ) -> Result<(), ApiError> {
        if !res.info.namespaced() {
            return Ok(());
        }
        let Some(ns) = namespace else {
            return Err(ApiError::bad_request(
                "a namespace is required for this resource",
            ));
        };
        self.cache.fresh().await.map_err(store_error)?;
        match self.cache.get(&Self::namespace_key(ns)) {
            None => Err(ApiError::not_found("", "namespaces", ns)),
            Some((obj, _)) => {
                let value = obj.value();
                if meta::deletion_timestamp(&value).is_some() {
                    let mut err = ApiError::forbidden(format!(
                        "unable to create new content in namespace {ns} because it is being terminated"
                    ));
                    err.reason = "Forbidden".into();
                    Err(err)
                } else {
                    Ok(())
                }
            }
        }
    }

    /// The namespace controller creates the `default` ServiceAccount right after its namespace:
    /// a pod created at once waits for it a moment (outside admission, which that controller's
    /// own write needs) instead of being refused.
    async fn await_default_service_account(
        &self,
        res: &Resource,
        namespace: Option<&str>,
        body: &Value,
    ) {
        if res.custom.is_some() || res.info.kind != "Pod" || !res.info.group.is_empty() {
            return;
        }
        let Some(ns) = namespace else { return };
        let account = body
            .pointer("/spec/serviceAccountName")
            .and_then(Value::as_str)
            .filter(|a| !a.is_empty())
            .unwrap_or("default");
        if account != "default" {
            return;
        }
        let key = resources::find_builtin("", "v1", "serviceaccounts")
            .expect("built in")
            .key(Some(ns), account);
        for _ in 0..40 {
            if self.cache.get(&key).is_some() || self.cache.get(&Self::namespace_key(ns)).is_none()
            {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// Kubernetes' ServiceAccount admission: a pod runs as an existing ServiceAccount, and
    /// unless it (or its account) opts out, gets the projected `kube-api-access-*` volume with
    /// the account's token, the cluster CA and its namespace, mounted in every container.
    async fn admit_service_account(
        &self,
        res: &Resource,
        namespace: Option<&str>,
        name: &str,
        pod: &mut Value,
    ) -> Result<(), ApiError> {
        if res.custom.is_some() || res.info.kind != "Pod" || !res.info.group.is_empty() {
            return Ok(());
        }
        let (Some(ns), Some(account)) = (
            namespace,
            pod.pointer("/spec/serviceAccountName")
                .and_then(Value::as_str)
                .map(str::to_string),
        ) else {
            return Ok(());
        };
        let accounts = resources::find_builtin("", "v1", "serviceaccounts").expect("built in");
        let key = accounts.key(Some(ns), &account);
        let Some((sa, _)) = self.cache.get(&key) else {
            return Err(ApiError::forbidden(format!(
                "pods \"{name}\" is forbidden: error looking up service account {ns}/{account}: serviceaccount \"{account}\" not found"
            )));
        };
        let automount = pod
            .pointer("/spec/automountServiceAccountToken")
            .and_then(Value::as_bool)
            .or_else(|| {
                sa.value()
                    .get("automountServiceAccountToken")
                    .and_then(Value::as_bool)
            })
            .unwrap_or(true);
        let has_volume = pod
            .pointer("/spec/volumes")
            .and_then(Value::as_array)
            .is_some_and(|v| {
                v.iter().any(|v| {
                    v["name"]
                        .as_str()
                        .is_some_and(|n| n.starts_with("kube-api-access-"))
                })
            });
        if !automount || has_volume {
            return Ok(());
        }
        let volume_name = meta::generated_name("kube-api-access-", random_suffix());
        let volume = json!({
            "name": volume_name,
            "projected": {
                "defaultMode": 420,
                "sources": [
                    {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                    {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                    {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}
                ]
            }
        });
        let spec = pod
            .get_mut("spec")
            .and_then(Value::as_object_mut)
            .expect("pods have a spec");
        let volumes = spec.entry("volumes").or_insert_with(|| json!([]));
        if let Some(list) = volumes.as_array_mut() {
            list.push(volume);
        }
        let mount = json!({"name": volume_name, "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount", "readOnly": true});
        for list in ["initContainers", "containers"] {
            for container in spec
                .get_mut(list)
                .and_then(Value::as_array_mut)
                .into_iter()
                .flatten()
            {
                let mounts = container
                    .as_object_mut()
                    .expect("containers are objects")
                    .entry("volumeMounts")
                    .or_insert_with(|| json!([]));
                let taken = mounts.as_array().is_some_and(|m| {
                    m.iter()
                        .any(|m| m["mountPath"] == "/var/run/secrets/kubernetes.io/serviceaccount")
                });
                if !taken && let Some(m) = mounts.as_array_mut() {
                    m.push(mount.clone());
                }
            }
        }
        Ok(())
    }

    /// Pick a ClusterIP for a new Service (or check the one it asks for) and record it in the
    /// store. The returned reservation is released unless the Service is written.
    async fn allocate_service_ip(
        &self,
        res: &Resource,
        namespace: Option<&str>,
        obj: &mut Value,
        dry_run: bool,
    ) -> Result<Option<Reservation>, ApiError> {
        self.cache.fresh().await.map_err(store_error)?;
        let (services, _) = self.cache.list(&res.info.storage_prefix());
        let values: Vec<Value> = services.iter().map(|s| s.value()).collect();
        let mut used = service_ips::used_addresses(values.iter());
        let name = meta::name(obj).to_string();
        let owner = format!("{}/{}", namespace.unwrap_or_default(), name);
        let requested = obj
            .pointer("/spec/clusterIP")
            .and_then(Value::as_str)
            .is_some_and(|ip| !ip.is_empty());
        for _ in 0..64 {
            let spec = obj
                .as_object_mut()
                .expect("admitted objects are JSON objects")
                .entry("spec")
                .or_insert_with(|| json!({}));
            service_ips::assign(&self.service_cidr, spec, &used, rand::random())
                .map_err(|causes| service_ips::allocation_error(&name, causes))?;
            let Some(ip) = spec
                .get("clusterIP")
                .and_then(Value::as_str)
                .map(str::to_string)
            else {
                return Ok(None);
            };
            if dry_run || !service_ips::wants_cluster_ip(spec) {
                return Ok(None);
            }
            let key = service_ips::record_key(&ip);
            match self.backend.create(&key, Bytes::from(owner.clone())).await {
                Ok(_) => {
                    let mut reservation = Reservation::new(self.backend.clone());
                    reservation.keys.push(key);
                    return Ok(Some(reservation));
                }
                // Taken by a Service this server has not seen yet (another server's).
                Err(StoreError::AlreadyExists(_)) if requested => {
                    return Err(service_ips::allocation_error(
                        &name,
                        vec![Cause::invalid(
                            "spec.clusterIPs",
                            &json!([ip]),
                            format!("failed to allocate IP {ip}: provided IP is already allocated"),
                        )],
                    ));
                }
                Err(StoreError::AlreadyExists(_)) => {
                    if let Ok(addr) = ip.parse() {
                        used.push(addr);
                    }
                    if let Some(map) = spec.as_object_mut() {
                        map.remove("clusterIP");
                        map.remove("clusterIPs");
                    }
                }
                Err(other) => return Err(store_error(other)),
            }
        }
        Err(ApiError::internal("could not allocate a ClusterIP"))
    }

    /// Reserve in the store the node ports `obj` (a Service being created, or replacing `old`)
    /// holds beyond those `old` held, allocating the ones it lacks. Called with the service
    /// allocation lock held.
    async fn reserve_node_ports(
        &self,
        namespace: Option<&str>,
        obj: &mut Value,
        old: Option<&Value>,
        dry_run: bool,
    ) -> Result<Reservation, ApiError> {
        let mut reservation = Reservation::new(self.backend.clone());
        let wants = obj.get("spec").is_some_and(node_ports::wants_node_ports);
        if !wants {
            return Ok(reservation);
        }
        self.cache.fresh().await.map_err(store_error)?;
        let services = resources::find_builtin("", "v1", "services").expect("built in");
        let (items, _) = self.cache.list(&services.storage_prefix());
        let name = meta::name(obj).to_string();
        let others: Vec<Value> = items
            .iter()
            .filter(|svc| !(svc.namespace.as_deref() == namespace && svc.name == name))
            .map(|svc| svc.value())
            .collect();
        let mut used = node_ports::used(others.iter());
        let already: std::collections::HashSet<node_ports::NodePort> = old
            .map(node_ports::held)
            .unwrap_or_default()
            .into_iter()
            .collect();
        let requested: std::collections::HashSet<node_ports::NodePort> = node_ports::held(obj)
            .into_iter()
            .filter(|p| !already.contains(p))
            .collect();
        let owner = format!("{}/{}", namespace.unwrap_or_default(), name);
        for _ in 0..64 {
            let spec = obj
                .as_object_mut()
                .expect("admitted objects are JSON objects")
                .entry("spec")
                .or_insert_with(|| json!({}));
            node_ports::assign(spec, &used, rand::random())
                .map_err(|causes| service_ips::allocation_error(&name, causes))?;
            if dry_run {
                return Ok(reservation);
            }
            let mut lost = None;
            for port in node_ports::held(obj) {
                let key = node_ports::record_key(&port);
                if already.contains(&port) || reservation.keys.contains(&key) {
                    continue;
                }
                match self.backend.create(&key, Bytes::from(owner.clone())).await {
                    Ok(_) => reservation.keys.push(key),
                    Err(StoreError::AlreadyExists(_)) if requested.contains(&port) => {
                        let cause = node_ports::taken_cause(&obj["spec"], &port);
                        return Err(service_ips::allocation_error(&name, vec![cause]));
                    }
                    // Taken by a Service this server has not seen yet: pick another.
                    Err(StoreError::AlreadyExists(_)) => {
                        lost = Some(port);
                        break;
                    }
                    Err(other) => return Err(store_error(other)),
                }
            }
            let Some(port) = lost else {
                return Ok(reservation);
            };
            for entry in obj
                .pointer_mut("/spec/ports")
                .and_then(Value::as_array_mut)
                .into_iter()
                .flatten()
            {
                if node_ports::held(&json!({"spec": {"ports": [entry.clone()]}})) == [port.clone()]
                    && let Some(map) = entry.as_object_mut()
                {
                    map.remove("nodePort");
                }
            }
            used.insert(port);
        }
        Err(ApiError::internal("could not allocate a node port"))
    }

    /// Release the records of node ports given up.
    async fn release_node_ports(&self, ports: impl IntoIterator<Item = node_ports::NodePort>) {
        for port in ports {
            if let Err(err) = self
                .backend
                .delete(&node_ports::record_key(&port), None)
                .await
                && !matches!(err, StoreError::NotFound(_))
            {
                tracing::warn!(?port, %err, "could not release a node port record");
            }
        }
    }

    /// Release the address records of a Service that is gone.
    async fn release_service_ips(&self, service: &Value) {
        self.release_node_ports(node_ports::held(service)).await;
        for ip in service_ips::addresses_of(service) {
            if let Err(err) = self
                .backend
                .delete(&service_ips::record_key(&ip), None)
                .await
                && !matches!(err, StoreError::NotFound(_))
            {
                tracing::warn!(%ip, %err, "could not release a ClusterIP record");
            }
        }
    }

    /// Make the address records match the Services: drop records no Service holds (a crash
    /// between reserving and writing) and add records missing for existing Services.
    pub async fn repair_service_ips(&self) -> Result<(), ApiError> {
        self.cache.fresh().await.map_err(store_error)?;
        let services = resources::find_builtin("", "v1", "services").expect("built in");
        let (items, _) = self.cache.list(&services.storage_prefix());
        let held: std::collections::HashMap<String, String> = items
            .iter()
            .flat_map(|svc| {
                let owner = format!("{}/{}", svc.namespace.clone().unwrap_or_default(), svc.name);
                service_ips::addresses_of(&svc.value())
                    .into_iter()
                    .map(move |ip| (ip, owner.clone()))
            })
            .collect();
        let (records, _) = self
            .backend
            .list(service_ips::RECORD_PREFIX)
            .await
            .map_err(store_error)?;
        for record in &records {
            let ip = record.key.trim_start_matches(service_ips::RECORD_PREFIX);
            if !held.contains_key(ip) {
                let _ = self
                    .backend
                    .delete(&record.key, Some(record.mod_revision))
                    .await;
            }
        }
        for (ip, owner) in held {
            let key = service_ips::record_key(&ip);
            if !records.iter().any(|r| r.key == key) {
                let _ = self.backend.create(&key, Bytes::from(owner)).await;
            }
        }
        // The same for node ports.
        let ports: std::collections::HashMap<String, String> = items
            .iter()
            .flat_map(|svc| {
                let owner = format!("{}/{}", svc.namespace.clone().unwrap_or_default(), svc.name);
                node_ports::held(&svc.value())
                    .into_iter()
                    .map(move |p| (node_ports::record_key(&p), owner.clone()))
            })
            .collect();
        let (records, _) = self
            .backend
            .list(node_ports::RECORD_PREFIX)
            .await
            .map_err(store_error)?;
        for record in &records {
            if !ports.contains_key(&record.key) {
                let _ = self
                    .backend
                    .delete(&record.key, Some(record.mod_revision))
                    .await;
            }
        }
        for (key, owner) in ports {
            if !records.iter().any(|r| r.key == key) {
                let _ = self.backend.create(&key, Bytes::from(owner)).await;
            }
        }
        Ok(())
    }

    /// Create an object.
    pub async fn create(
        &self,
        res: &Resource,
        namespace: Option<&str>,
        body: Value,
        opts: &WriteOptions,
    ) -> Result<WriteResult, ApiError> {
        let mut warnings = Vec::new();
        // Admission is CPU work: bounded so that reads keep a core (released before the store
        // write, which is where concurrent requests share commits).
        self.await_default_service_account(res, namespace, &body)
            .await;
        let mut admission = Some(
            self.admission
                .acquire()
                .await
                .map_err(|_| ApiError::service_unavailable("shutting down"))?,
        );
        let mut obj = self.admit_body(res, body, opts, &mut warnings)?;
        // Namespace: the URL decides; a different one in the body is an error.
        {
            let metadata = meta::metadata_mut(&mut obj);
            match (res.info.namespaced(), namespace) {
                (true, Some(ns)) => match metadata.get("namespace").and_then(Value::as_str) {
                    Some(body_ns) if !body_ns.is_empty() && body_ns != ns => {
                        return Err(ApiError::bad_request(
                            "the namespace of the provided object does not match the namespace sent on the request",
                        ));
                    }
                    _ => {
                        metadata.insert("namespace".into(), json!(ns));
                    }
                },
                _ => {
                    metadata.remove("namespace");
                }
            }
        }
        let has_name = !meta::name(&obj).is_empty();
        let generate_name = obj
            .pointer("/metadata/generateName")
            .and_then(Value::as_str)
            .map(str::to_string)
            .filter(|g| !g.is_empty());
        if !has_name && generate_name.is_none() {
            return Err(ApiError::invalid(
                &res.info.group,
                &res.info.kind,
                "",
                vec![Cause::new(
                    "FieldValueRequired",
                    "metadata.name",
                    "Required value: name or generateName is required",
                )],
            ));
        }
        self.check_namespace(res, namespace).await?;
        if let Some(custom) = &res.custom {
            let crds =
                resources::find_builtin("apiextensions.k8s.io", "v1", "customresourcedefinitions")
                    .expect("CRDs are built in");
            if self
                .cache
                .get(&crds.key(None, &custom.crd_name))
                .is_some_and(|(crd, _)| crd.deleting)
            {
                return Err(ApiError::method_not_allowed(
                    "create not allowed while custom resource definition is terminating",
                ));
            }
        }
        let timestamp = now();
        prepare_for_create(res, &mut obj, timestamp);
        let is_service = is_core_service(res);
        // Held until the Service is stored: allocations from this server do not race each other.
        let _service_ips = if is_service {
            Some(self.service_ips.lock().await)
        } else {
            None
        };
        let mut reservation = None;
        let mut port_reservation = None;
        if is_service {
            reservation = self
                .allocate_service_ip(res, namespace, &mut obj, opts.dry_run)
                .await?;
            port_reservation = Some(
                self.reserve_node_ports(namespace, &mut obj, None, opts.dry_run)
                    .await?,
            );
        }
        let base = obj;
        // A generated name may collide; Kubernetes returns the conflict, we retry a few times.
        for attempt in 0..8 {
            let mut obj = base.clone();
            if !has_name && let Some(prefix) = &generate_name {
                meta::metadata_mut(&mut obj).insert(
                    "name".into(),
                    json!(meta::generated_name(prefix, random_suffix())),
                );
            }
            {
                let metadata = meta::metadata_mut(&mut obj);
                metadata.insert("uid".into(), json!(new_uid()));
                metadata.insert(
                    "creationTimestamp".into(),
                    json!(meta::format_time(timestamp)),
                );
                metadata.remove("resourceVersion");
                metadata.remove("deletionTimestamp");
                metadata.remove("deletionGracePeriodSeconds");
                if res.info.has_generation || res.custom.is_some() {
                    metadata.insert("generation".into(), json!(1));
                } else {
                    metadata.remove("generation");
                }
            }
            // Defaults come last: some derive from the name and uid (Job selectors).
            maestro_api::defaults::apply_defaults(res.storage_group(), &res.info.kind, &mut obj);
            if !opts.apply {
                let keys = crate::patch::list_keys_for(res);
                crate::apply::record_update(None, &mut obj, opts.manager_name(), None, &keys);
            }
            let name = meta::name(&obj).to_string();
            self.admit_service_account(res, namespace, &name, &mut obj)
                .await?;
            self.admit_default_tolerations(res, &mut obj);
            self.admit_priority(res, &name, &mut obj)?;
            self.admit_default_ingress_class(res, &mut obj);
            self.admit_default_storage_class(res, &mut obj);
            admit_storage_protection(res, &mut obj);
            if res.custom.is_none()
                && res.info.kind == "Pod"
                && res.info.group.is_empty()
                && let Some(ns) = namespace
            {
                crate::quota::apply_limit_ranges(&self.cache, ns, &name, &mut obj)?;
            }
            self.validate(res, &obj, None)?;
            // Quota: checked against the namespace's usage and held until the write is done,
            // so that two creations cannot both take the last room.
            let _quota = match namespace {
                Some(ns)
                    if res.info.namespaced()
                        && !opts.dry_run
                        && crate::quota::has_quota(&self.cache, ns) =>
                {
                    let guard = self.quota_lock.lock().await;
                    self.cache.fresh().await.map_err(store_error)?;
                    crate::quota::check_quota(&self.cache, res, ns, &name, &obj)?;
                    Some(guard)
                }
                _ => None,
            };
            if opts.dry_run {
                let key = res.info.key(namespace, &name);
                self.cache.fresh().await.map_err(store_error)?;
                if self.cache.get(&key).is_some() {
                    return Err(ApiError::already_exists(
                        &res.info.group,
                        &res.info.plural,
                        &name,
                    ));
                }
                return Ok(WriteResult {
                    object: self.present_value(res, obj),
                    warnings,
                    created: true,
                });
            }
            let key = res.info.key(namespace, &name);
            let bytes = encode(&obj)?;
            admission.take();
            match self.backend.create(&key, bytes).await {
                Ok(rev) => {
                    if let Some(reservation) = reservation.take() {
                        reservation.keep();
                    }
                    if let Some(reservation) = port_reservation.take() {
                        reservation.keep();
                    }
                    set_resource_version(&mut obj, rev);
                    return Ok(WriteResult {
                        object: self.present_value(res, obj),
                        warnings,
                        created: true,
                    });
                }
                Err(StoreError::AlreadyExists(_)) if !has_name && attempt < 7 => continue,
                Err(StoreError::AlreadyExists(_)) => {
                    return Err(ApiError::already_exists(
                        &res.info.group,
                        &res.info.plural,
                        &name,
                    ));
                }
                Err(other) => return Err(store_error(other)),
            }
        }
        Err(ApiError::internal("could not generate a unique name"))
    }

    /// Replace an object (PUT), or its status (`subresource = Some("status")`).
    pub async fn update(
        &self,
        res: &Resource,
        namespace: Option<&str>,
        name: &str,
        body: Value,
        subresource: Option<&str>,
        opts: &WriteOptions,
    ) -> Result<WriteResult, ApiError> {
        let mut warnings = Vec::new();
        let new = self.admit_body(res, body, opts, &mut warnings)?;
        let body_name = meta::name(&new);
        if !body_name.is_empty() && body_name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        if res.info.namespaced()
            && let (Some(body_ns), Some(ns)) = (meta::namespace(&new), namespace)
            && !body_ns.is_empty()
            && body_ns != ns
        {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        let precondition = meta::resource_version(&new).map(str::to_string);
        let mut result = self
            .read_modify_write(
                res,
                namespace,
                name,
                precondition.as_deref(),
                opts,
                |_current| Ok(new.clone()),
                subresource,
            )
            .await?;
        result.warnings.splice(0..0, warnings);
        Ok(result)
    }

    /// The shared read-modify-write loop of updates and patches. `mutate` computes the new
    /// object from the current one (in the served version); a conflict with a concurrent writer
    /// retries unless the client pinned a resourceVersion.
    #[allow(clippy::too_many_arguments)]
    pub async fn read_modify_write(
        &self,
        res: &Resource,
        namespace: Option<&str>,
        name: &str,
        precondition: Option<&str>,
        opts: &WriteOptions,
        mutate: impl Fn(&Value) -> Result<Value, ApiError>,
        subresource: Option<&str>,
    ) -> Result<WriteResult, ApiError> {
        let key = res.info.key(namespace, name);
        for _ in 0..MAX_UPDATE_ATTEMPTS {
            self.cache.fresh().await.map_err(store_error)?;
            let admission = self
                .admission
                .acquire()
                .await
                .map_err(|_| ApiError::service_unavailable("shutting down"))?;
            let Some((current, _)) = self.cache.get(&key) else {
                return Err(ApiError::not_found(&res.info.group, &res.info.plural, name));
            };
            if let Some(rv) = precondition
                && rv != current.revision.to_string()
            {
                return Err(ApiError::conflict(&res.info.group, &res.info.plural, name));
            }
            let old = current.value();
            let served_old = self.present_value(res, old.clone());
            let requested = mutate(&served_old)?;
            let mut warnings = Vec::new();
            let mut new = self.admit_body(res, requested, opts, &mut warnings)?;
            prepare_for_update(res, &mut new, &old, subresource);
            maestro_api::defaults::apply_defaults(res.storage_group(), &res.info.kind, &mut new);
            if !opts.apply {
                let keys = crate::patch::list_keys_for(res);
                crate::apply::record_update(
                    Some(&old),
                    &mut new,
                    opts.manager_name(),
                    subresource,
                    &keys,
                );
            }
            // A binding only sets spec.nodeName, which pod updates may not change.
            if subresource != Some("binding") {
                self.validate(res, &new, Some(&old))?;
            }
            // Deletion completes when the last finalizer is removed.
            let finished = meta::deletion_timestamp(&new).is_some()
                && meta::finalizers(&new).is_empty()
                && !namespace_has_spec_finalizers(res, &new);
            if same_content(&new, &old) && !finished {
                return Ok(WriteResult {
                    object: self.present_value(res, old),
                    warnings,
                    created: false,
                });
            }
            // A Service that needs node ports it did not hold gets them reserved first.
            let service_spec_write = is_core_service(res) && subresource.is_none() && !finished;
            let _allocation_lock = if service_spec_write {
                Some(self.service_ips.lock().await)
            } else {
                None
            };
            let port_reservation = if service_spec_write {
                Some(
                    self.reserve_node_ports(namespace, &mut new, Some(&old), opts.dry_run)
                        .await?,
                )
            } else {
                None
            };
            if opts.dry_run {
                return Ok(WriteResult {
                    object: self.present_value(res, new),
                    warnings,
                    created: false,
                });
            }
            let bytes = if finished { None } else { Some(encode(&new)?) };
            drop(admission);
            // Removing the last finalizer of an object being deleted deletes it.
            let outcome = if finished {
                self.backend
                    .delete(&key, Some(current.revision))
                    .await
                    .map(|(rev, _)| rev)
            } else {
                self.backend
                    .update(&key, bytes.unwrap_or_default(), current.revision)
                    .await
            };
            match outcome {
                Ok(rev) => {
                    if finished && is_core_service(res) {
                        self.release_service_ips(&new).await;
                    }
                    if let Some(reservation) = port_reservation {
                        reservation.keep();
                        let kept = node_ports::held(&new);
                        let given_up: Vec<_> = node_ports::held(&old)
                            .into_iter()
                            .filter(|p| !kept.contains(p))
                            .collect();
                        self.release_node_ports(given_up).await;
                    }
                    set_resource_version(&mut new, rev);
                    return Ok(WriteResult {
                        object: self.present_value(res, new),
                        warnings,
                        created: false,
                    });
                }
                Err(err) => match cas_failure(res, name, err, precondition.is_none()) {
                    CasFailure::Retry => continue,
                    CasFailure::Fail(err) => return Err(err),
                },
            }
        }
        Err(ApiError::conflict(&res.info.group, &res.info.plural, name))
    }

    /// Bind a pod to a node as the binding subresource's storage does: `spec.nodeName` and a
    /// true `PodScheduled` condition in one conditional write of the stored object. No update
    /// admission runs (a binding changes nothing a user wrote), which keeps the scheduler's
    /// writes cheap. Fails with 409 when the pod is gone to another uid, already bound, or
    /// being deleted.
    pub async fn bind_pod(
        &self,
        namespace: &str,
        name: &str,
        uid: &str,
        node: &str,
    ) -> Result<Revision, ApiError> {
        let pods = resources::find_builtin("", "v1", "pods").expect("built in");
        let key = pods.key(Some(namespace), name);
        for attempt in 0..MAX_UPDATE_ATTEMPTS {
            if attempt > 0 {
                self.cache.fresh().await.map_err(store_error)?;
            }
            let Some((current, _)) = self.cache.get(&key) else {
                return Err(ApiError::not_found("", "pods", name));
            };
            let mut pod = current.value();
            if meta::uid(&pod) != Some(uid) {
                return Err(ApiError::conflict_with(
                    "",
                    "pods",
                    name,
                    "the pod was replaced by another of the same name",
                ));
            }
            if meta::deletion_timestamp(&pod).is_some() {
                return Err(ApiError::conflict_with(
                    "",
                    "pods",
                    name,
                    "the pod is being deleted",
                ));
            }
            if let Some(bound) = pod
                .pointer("/spec/nodeName")
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty())
            {
                return Err(ApiError::conflict_with(
                    "",
                    "pods",
                    name,
                    &format!("pod {name} is already assigned to node \"{bound}\""),
                ));
            }
            pod["spec"]["nodeName"] = json!(node);
            let stamp = now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
            let scheduled = json!({"type": "PodScheduled", "status": "True",
                "lastProbeTime": null, "lastTransitionTime": stamp});
            match pod["status"]["conditions"].as_array_mut() {
                Some(conditions) => {
                    conditions.retain(|c| c["type"] != "PodScheduled");
                    conditions.push(scheduled);
                }
                None => pod["status"]["conditions"] = json!([scheduled]),
            }
            let bytes = encode(&pod)?;
            match self.backend.update(&key, bytes, current.revision).await {
                Ok(revision) => {
                    self.bindings
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    return Ok(revision);
                }
                Err(StoreError::Conflict { .. }) => continue,
                Err(StoreError::NotFound(_)) => {
                    return Err(ApiError::not_found("", "pods", name));
                }
                Err(err) => return Err(store_error(err)),
            }
        }
        Err(ApiError::conflict("", "pods", name))
    }

    /// Delete an object, honouring finalizers, propagation and preconditions. Returns the object
    /// as deleted (or as marked for deletion).
    pub async fn delete(
        &self,
        res: &Resource,
        namespace: Option<&str>,
        name: &str,
        opts: &DeleteOptions,
    ) -> Result<Deleted, ApiError> {
        if res.custom.is_none()
            && res.info.kind == "Namespace"
            && IMMORTAL_NAMESPACES.contains(&name)
        {
            return Err(ApiError::forbidden(format!(
                "namespaces \"{name}\" is forbidden: this namespace may not be deleted"
            )));
        }
        let key = res.info.key(namespace, name);
        for _ in 0..MAX_UPDATE_ATTEMPTS {
            self.cache.fresh().await.map_err(store_error)?;
            let Some((current, _)) = self.cache.get(&key) else {
                return Err(ApiError::not_found(&res.info.group, &res.info.plural, name));
            };
            let mut obj = current.value();
            if let Some(uid) = &opts.precondition_uid
                && meta::uid(&obj) != Some(uid.as_str())
            {
                return Err(ApiError::conflict_with(
                    &res.info.group,
                    &res.info.plural,
                    name,
                    &format!(
                        "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                        meta::uid(&obj).unwrap_or_default()
                    ),
                ));
            }
            if let Some(rv) = &opts.precondition_resource_version
                && *rv != current.revision.to_string()
            {
                return Err(ApiError::conflict_with(
                    &res.info.group,
                    &res.info.plural,
                    name,
                    &format!(
                        "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                        current.revision
                    ),
                ));
            }
            let mut finalizers = meta::finalizers(&obj);
            let already_deleting = meta::deletion_timestamp(&obj).is_some();
            let propagation = opts.propagation.unwrap_or(default_propagation(res));
            let wanted = match propagation {
                Propagation::Foreground => Some("foregroundDeletion"),
                Propagation::Orphan => Some("orphan"),
                Propagation::Background => None,
            };
            let mut changed = false;
            if let Some(f) = wanted
                && !finalizers.iter().any(|x| x == f)
                && !already_deleting
            {
                finalizers.push(f.to_string());
                changed = true;
            }
            // Namespaces always go through the namespace controller.
            let namespace_pending = namespace_has_spec_finalizers(res, &obj);
            // Pods bound to a node are deleted gracefully: the node's agent removes them.
            let graceful_pod = res.info.kind == "Pod"
                && res.custom.is_none()
                && obj
                    .pointer("/spec/nodeName")
                    .and_then(Value::as_str)
                    .is_some_and(|n| !n.is_empty())
                && opts.grace_period_seconds != Some(0)
                && !matches!(
                    obj.pointer("/status/phase").and_then(Value::as_str),
                    Some("Succeeded" | "Failed")
                );
            if finalizers.is_empty() && !namespace_pending && !graceful_pod {
                if opts.dry_run {
                    return Ok(Deleted::removed(self.present_value(res, obj)));
                }
                match self.backend.delete(&key, Some(current.revision)).await {
                    Ok(_) => {
                        if is_core_service(res) {
                            self.release_service_ips(&obj).await;
                        }
                        return Ok(Deleted::removed(self.present_value(res, obj)));
                    }
                    Err(err) => match cas_failure(res, name, err, true) {
                        CasFailure::Retry => continue,
                        CasFailure::Fail(err) => return Err(err),
                    },
                }
            }
            if already_deleting && !changed {
                return Ok(Deleted::pending(self.present_value(res, obj)));
            }
            {
                let metadata = meta::metadata_mut(&mut obj);
                if !already_deleting {
                    metadata.insert("deletionTimestamp".into(), json!(meta::format_time(now())));
                    let grace = if graceful_pod {
                        opts.grace_period_seconds
                            .unwrap_or_else(|| obj_grace_period(&current.value()).unwrap_or(30))
                    } else {
                        0
                    };
                    metadata.insert("deletionGracePeriodSeconds".into(), json!(grace));
                }
                metadata.insert("finalizers".into(), json!(finalizers));
                if finalizers.is_empty() {
                    metadata.remove("finalizers");
                }
            }
            if namespace_pending && let Some(map) = obj.as_object_mut() {
                map.insert("status".into(), json!({"phase": "Terminating"}));
            }
            if opts.dry_run {
                return Ok(Deleted::pending(self.present_value(res, obj)));
            }
            // encode() leaves the resourceVersion out.
            let bytes = encode(&obj)?;
            match self.backend.update(&key, bytes, current.revision).await {
                Ok(rev) => {
                    set_resource_version(&mut obj, rev);
                    return Ok(Deleted::pending(self.present_value(res, obj)));
                }
                Err(err) => match cas_failure(res, name, err, true) {
                    CasFailure::Retry => continue,
                    CasFailure::Fail(err) => return Err(err),
                },
            }
        }
        Err(ApiError::conflict(&res.info.group, &res.info.plural, name))
    }

    /// Delete every object matching the selectors in a namespace (or cluster-wide).
    pub async fn delete_collection(
        &self,
        res: &Resource,
        namespace: Option<&str>,
        list: &ListOptions,
        opts: &DeleteOptions,
    ) -> Result<Vec<Deleted>, ApiError> {
        let (items, _) = self.list(res, namespace, list).await?;
        let mut deleted = Vec::new();
        for item in items {
            match self
                .delete(res, item.namespace.as_deref(), &item.name, opts)
                .await
            {
                Ok(obj) => deleted.push(obj),
                Err(err) if err.code == 404 => {}
                Err(err) => return Err(err),
            }
        }
        Ok(deleted)
    }
}

/// A namespace stays until the namespace controller clears `spec.finalizers`.
fn namespace_has_spec_finalizers(res: &Resource, obj: &Value) -> bool {
    res.custom.is_none()
        && res.info.kind == "Namespace"
        && obj
            .pointer("/spec/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|f| !f.is_empty())
}

/// What a failed compare-and-swap means to a read-modify-write loop.
enum CasFailure {
    /// Someone else wrote first: read again and redo the change.
    Retry,
    Fail(ApiError),
}

fn cas_failure(res: &Resource, name: &str, err: StoreError, may_retry: bool) -> CasFailure {
    match err {
        StoreError::Conflict { .. } if may_retry => CasFailure::Retry,
        StoreError::Conflict { .. } => {
            CasFailure::Fail(ApiError::conflict(&res.info.group, &res.info.plural, name))
        }
        StoreError::NotFound(_) => {
            CasFailure::Fail(ApiError::not_found(&res.info.group, &res.info.plural, name))
        }
        other => CasFailure::Fail(store_error(other)),
    }
}

/// Read the termination grace period of a pod.
fn obj_grace_period(pod: &Value) -> Option<i64> {
    pod.pointer("/spec/terminationGracePeriodSeconds")
        .and_then(Value::as_i64)
}

/// The propagation Kubernetes applies when the client names none.
fn default_propagation(_res: &Resource) -> Propagation {
    Propagation::Background
}

fn matches(obj: &StoredObject, opts: &ListOptions) -> bool {
    opts.labels.matches_map(&obj.labels) && opts.fields.matches(|f| obj.field(f))
}

fn set_resource_version(obj: &mut Value, rev: Revision) {
    meta::metadata_mut(obj).insert("resourceVersion".into(), json!(rev.to_string()));
}

/// The stored bytes: JSON without resourceVersion (the store's revision is the version).
fn encode(obj: &Value) -> Result<Bytes, ApiError> {
    let map = obj
        .as_object()
        .ok_or_else(|| ApiError::internal("only objects are stored"))?;
    // apiVersion, kind and metadata first: the watch cache splices the revision in right after
    // `"metadata":{` instead of re-encoding every object. Written field by field: no copy.
    let mut out = Vec::with_capacity(1024);
    out.push(b'{');
    let mut first = true;
    let mut field = |out: &mut Vec<u8>,
                     key: &str,
                     value: &dyn Fn(&mut Vec<u8>) -> serde_json::Result<()>|
     -> serde_json::Result<()> {
        if !std::mem::take(&mut first) {
            out.push(b',');
        }
        serde_json::to_writer(&mut *out, key)?;
        out.push(b':');
        value(out)
    };
    let internal = |e: serde_json::Error| ApiError::internal(e.to_string());
    for key in ["apiVersion", "kind"] {
        if let Some(v) = map.get(key) {
            field(&mut out, key, &|out| serde_json::to_writer(out, v)).map_err(internal)?;
        }
    }
    if let Some(metadata) = map.get("metadata") {
        field(&mut out, "metadata", &|out| match metadata.as_object() {
            Some(m) => {
                out.push(b'{');
                let mut first_meta = true;
                for (k, v) in m.iter().filter(|(k, _)| k.as_str() != "resourceVersion") {
                    if !std::mem::take(&mut first_meta) {
                        out.push(b',');
                    }
                    serde_json::to_writer(&mut *out, k)?;
                    out.push(b':');
                    serde_json::to_writer(&mut *out, v)?;
                }
                out.push(b'}');
                Ok(())
            }
            None => serde_json::to_writer(out, metadata),
        })
        .map_err(internal)?;
    }
    for (k, v) in map
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "apiVersion" | "kind" | "metadata"))
    {
        field(&mut out, k, &|out| serde_json::to_writer(out, v)).map_err(internal)?;
    }
    out.push(b'}');
    if out.len() > MAX_OBJECT_BYTES {
        return Err(ApiError::too_large("the object is too large to be stored"));
    }
    Ok(Bytes::from(out))
}

/// Equal apart from resourceVersion (compared in place: objects can be large).
fn same_content(a: &Value, b: &Value) -> bool {
    let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else {
        return a == b;
    };
    let without_rv = |m: &'_ Map<String, Value>| -> usize {
        m.get("metadata")
            .and_then(Value::as_object)
            .map_or(0, |meta| {
                meta.len() - usize::from(meta.contains_key("resourceVersion"))
            })
    };
    a.len() == b.len()
        && a.iter().all(|(k, v)| match (k.as_str(), b.get(k)) {
            ("metadata", Some(other)) => match (v.as_object(), other.as_object()) {
                (Some(ma), Some(mb)) => {
                    without_rv(a) == without_rv(b)
                        && ma
                            .iter()
                            .filter(|(k, _)| k.as_str() != "resourceVersion")
                            .all(|(k, v)| mb.get(k) == Some(v))
                }
                _ => v == other,
            },
            (_, Some(other)) => v == other,
            (_, None) => false,
        })
}

/// Whether the spec-like content (everything but metadata and, when split, status) differs.
fn spec_changed(res: &Resource, new: &Value, old: &Value) -> bool {
    let strip = |v: &Value| -> Map<String, Value> {
        let mut map = v.as_object().cloned().unwrap_or_default();
        map.remove("metadata");
        map.remove("apiVersion");
        map.remove("kind");
        if res.info.status_subresource {
            map.remove("status");
        }
        map
    };
    strip(new) != strip(old)
}

/// System fields set on create (Kubernetes' PrepareForCreate of each strategy).
fn prepare_for_create(res: &Resource, obj: &mut Value, now: jiff::Timestamp) {
    let map = obj
        .as_object_mut()
        .expect("admitted objects are JSON objects");
    if res.custom.is_none() {
        match (res.info.storage_group.as_str(), res.info.kind.as_str()) {
            ("", "Namespace") => {
                map.insert("status".into(), json!({"phase": "Active"}));
                // The namespace controller owns this finalizer: it empties the namespace first.
                map.insert("spec".into(), json!({"finalizers": ["kubernetes"]}));
            }
            // Defaults give a new pod its Pending phase and QoS class.
            ("", "Pod") => {
                map.remove("status");
            }
            ("apiextensions.k8s.io", "CustomResourceDefinition") => {
                crd::establish(obj, now);
                let finalizers = meta::finalizers(obj);
                if !finalizers.iter().any(|f| f == crd::CLEANUP_FINALIZER) {
                    let mut list = finalizers;
                    list.push(crd::CLEANUP_FINALIZER.to_string());
                    meta::metadata_mut(obj).insert("finalizers".into(), json!(list));
                }
            }
            _ => {
                // The status of a kind with a status subresource is written by its controller.
                if res.info.status_subresource {
                    map.remove("status");
                }
            }
        }
    } else if res.custom.as_ref().is_some_and(|c| c.status_subresource) {
        map.remove("status");
    }
}

/// Carry system fields over from the stored object (Kubernetes' PrepareForUpdate).
fn prepare_for_update(res: &Resource, new: &mut Value, old: &Value, subresource: Option<&str>) {
    let split_status =
        res.info.status_subresource || res.custom.as_ref().is_some_and(|c| c.status_subresource);
    match subresource {
        Some("binding") => {
            // A binding sets the node and nothing else.
            let node = new.pointer("/spec/nodeName").cloned();
            let mut merged = old.clone();
            if let Some(node) = node {
                merged["spec"]["nodeName"] = node;
            }
            *new = merged;
        }
        Some("status") => {
            // A status write changes only status; everything else stays as stored.
            let status = new.get("status").cloned();
            let mut merged = old.clone();
            let map = merged
                .as_object_mut()
                .expect("stored objects are JSON objects");
            match status {
                Some(s) => {
                    map.insert("status".into(), s);
                }
                None => {
                    map.remove("status");
                }
            }
            *new = merged;
        }
        _ => {
            if split_status {
                let map = new
                    .as_object_mut()
                    .expect("admitted objects are JSON objects");
                match old.get("status") {
                    Some(s) => {
                        map.insert("status".into(), s.clone());
                    }
                    None => {
                        map.remove("status");
                    }
                }
            }
        }
    }
    if res.custom.is_none() && res.info.group.is_empty() && res.info.kind == "Service" {
        // Clients replacing a Service rarely repeat the allocated address and ports: keep them.
        if subresource.is_none() {
            node_ports::drop_type_dependent_fields(new, old);
            node_ports::keep_allocated(new, old);
        }
        for field in ["clusterIP", "clusterIPs"] {
            let given = new
                .pointer(&format!("/spec/{field}"))
                .is_some_and(|v| !v.is_null() && v != "");
            if !given && let Some(value) = old.pointer(&format!("/spec/{field}")) {
                meta::set_path(new, &format!("spec.{field}"), value.clone());
            }
        }
    }
    let old_meta = old.get("metadata").cloned().unwrap_or(json!({}));
    let generation_tracked = res.info.has_generation || res.custom.is_some();
    let bump = generation_tracked && subresource.is_none() && spec_changed(res, new, old);
    let metadata = meta::metadata_mut(new);
    for field in [
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generation",
    ] {
        match old_meta.get(field) {
            Some(v) => {
                metadata.insert(field.into(), v.clone());
            }
            None => {
                metadata.remove(field);
            }
        }
    }
    for field in ["namespace", "name"] {
        match old_meta.get(field) {
            Some(v) => {
                metadata.insert(field.into(), v.clone());
            }
            // Cluster-scoped objects have no namespace, whatever the body says.
            None if field == "namespace" => {
                metadata.remove(field);
            }
            None => {}
        }
    }
    if bump {
        let generation = old_meta
            .get("generation")
            .and_then(Value::as_i64)
            .unwrap_or(0)
            + 1;
        metadata.insert("generation".into(), json!(generation));
    }
    if res.custom.is_none() && res.info.kind == "CustomResourceDefinition" && subresource.is_none()
    {
        crd::establish(new, now());
    }
}

/// StorageObjectInUseProtection admission: claims get `kubernetes.io/pvc-protection` and volumes
/// `kubernetes.io/pv-protection`, which the volume controller lifts only once no pod uses the
/// claim (or no claim is bound to the volume), so data in use is never deleted underneath it.
fn admit_storage_protection(res: &Resource, object: &mut Value) {
    if res.custom.is_some() || !res.info.group.is_empty() {
        return;
    }
    let finalizer = match res.info.kind.as_str() {
        "PersistentVolumeClaim" => "kubernetes.io/pvc-protection",
        "PersistentVolume" => "kubernetes.io/pv-protection",
        _ => return,
    };
    let mut finalizers = meta::finalizers(object);
    if !finalizers.iter().any(|f| f == finalizer) {
        finalizers.push(finalizer.to_string());
        meta::metadata_mut(object).insert("finalizers".into(), json!(finalizers));
    }
}

/// Set `spec.<field>`, creating `spec` when the object has none.
fn set_spec_field(object: &mut Value, field: &str, value: Value) {
    if let Some(spec) = object
        .as_object_mut()
        .map(|o| o.entry("spec").or_insert_with(|| json!({})))
        .and_then(Value::as_object_mut)
    {
        spec.insert(field.into(), value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_puts_identity_first_and_drops_the_version() {
        let obj = json!({"data": {"a": "b"}, "metadata": {"name": "c", "resourceVersion": "9"}, "kind": "ConfigMap", "apiVersion": "v1"});
        let bytes = encode(&obj).unwrap();
        assert_eq!(
            std::str::from_utf8(&bytes).unwrap(),
            r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c"},"data":{"a":"b"}}"#
        );
    }

    #[test]
    fn content_comparison_ignores_only_the_version() {
        let a = json!({"kind": "ConfigMap", "metadata": {"name": "c", "resourceVersion": "1"}, "data": {"a": "b"}});
        let same = json!({"kind": "ConfigMap", "metadata": {"name": "c", "resourceVersion": "2"}, "data": {"a": "b"}});
        let unversioned =
            json!({"kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "b"}});
        let other = json!({"kind": "ConfigMap", "metadata": {"name": "c", "resourceVersion": "1"}, "data": {"a": "x"}});
        let relabelled = json!({"kind": "ConfigMap", "metadata": {"name": "c", "labels": {"x": "y"}}, "data": {"a": "b"}});
        assert!(same_content(&a, &same));
        assert!(same_content(&a, &unversioned));
        assert!(!same_content(&a, &other));
        assert!(!same_content(&a, &relabelled));
    }
}
