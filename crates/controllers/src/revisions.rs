//! ControllerRevisions: the template history of DaemonSets and StatefulSets, which `kubectl
//! rollout history|undo` read. Each template gets one revision object (`<owner>-<hash>`) holding
//! it as a patch that replaces the owner's template; a template that comes back (an undo)
//! takes the next revision number.

use maestro_apiserver::Registry;
use maestro_apiserver::registry::{Resource, WriteOptions};
use serde_json::{Value, json};

use crate::objects::{controlled_by, controller_reference, int};

/// A short, stable hash of a template (FNV-1a over its canonical JSON), in the consonant and
/// digit alphabet of generated names.
pub fn template_hash(template: &Value) -> String {
    let mut text = String::new();
    crate::deployment::canonical(template, &mut text);
    let mut hash: u32 = 0x811c_9dc5;
    for byte in text.bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    hash.to_string()
        .bytes()
        .map(|b| ALPHABET[usize::from(b) % ALPHABET.len()] as char)
        .collect()
}

/// Make sure the revision `name` of `owner`'s current template exists and is the newest one.
pub async fn ensure(
    registry: &Registry,
    revisions: &Resource,
    owner: &Value,
    kind: &str,
    name: &str,
) -> Result<(), String> {
    let namespace = owner["metadata"]["namespace"].as_str().unwrap_or_default();
    let uid = owner["metadata"]["uid"].as_str().unwrap_or_default();
    let (existing, _) = registry
        .cache()
        .list(&revisions.info.namespace_prefix(Some(namespace)));
    let owned: Vec<Value> = existing
        .iter()
        .map(|r| r.value())
        .filter(|r| controlled_by(r, uid))
        .collect();
    let newest = owned.iter().map(|r| int(r, "/revision")).max().unwrap_or(0);
    if let Some(current) = owned.iter().find(|r| r["metadata"]["name"] == name) {
        if int(current, "/revision") < newest {
            crate::writes::edit(registry, revisions, Some(namespace), name, None, |r| {
                r["revision"] = json!(newest + 1);
            })
            .await?;
        }
        return Ok(());
    }
    let mut reference = controller_reference(owner);
    reference["apiVersion"] = json!("apps/v1");
    reference["kind"] = json!(kind);
    let mut template = owner["spec"]["template"].clone();
    template["$patch"] = json!("replace");
    let revision = json!({
        "apiVersion": "apps/v1", "kind": "ControllerRevision",
        "metadata": {"name": name, "namespace": namespace,
            "labels": owner["spec"]["selector"]["matchLabels"].clone(),
            "ownerReferences": [reference]},
        "data": {"spec": {"template": template}},
        "revision": newest + 1,
    });
    match registry
        .create(
            revisions,
            Some(namespace),
            revision,
            &WriteOptions::default(),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if e.code == 409 => Ok(()),
        Err(e) => Err(format!("creating ControllerRevision {name}: {}", e.message)),
    }
}
