//! ImageLocality: prefers nodes that already hold the pod's images, weighted by image size and
//! discounted for images that most nodes have anyway (kube-scheduler's thresholds: 23 MB to
//! 1,000 MB per container).

use std::collections::HashMap;

use crate::scheduler::cache::Cache;
use crate::scheduler::framework::{Cycle, MAX_NODE_SCORE, Plugin};
use crate::scheduler::types::NodeInfo;

const MIN_THRESHOLD: i64 = 23 * 1024 * 1024;
const MAX_CONTAINER_THRESHOLD: i64 = 1000 * 1024 * 1024;

pub struct ImageLocality;

/// Per cycle: how many nodes hold each of the pod's images, and how many nodes there are.
struct Spread {
    holders: HashMap<String, i64>,
    total: i64,
}

/// Registries' default names: `nginx` is `docker.io/library/nginx:latest` on a node.
fn normalized(image: &str) -> String {
    let with_tag = if image
        .rsplit('/')
        .next()
        .is_some_and(|last| last.contains(':') || last.contains('@'))
    {
        image.to_string()
    } else {
        format!("{image}:latest")
    };
    let first = with_tag.split('/').next().unwrap_or_default();
    if with_tag.contains('/')
        && (first.contains('.') || first.contains(':') || first == "localhost")
    {
        with_tag
    } else if with_tag.contains('/') {
        format!("docker.io/{with_tag}")
    } else {
        format!("docker.io/library/{with_tag}")
    }
}

impl Plugin for ImageLocality {
    fn name(&self) -> &'static str {
        "ImageLocality"
    }

    fn pre_score(&self, cycle: &mut Cycle, cache: &mut Cache, _: &[usize]) -> bool {
        let mut holders = HashMap::new();
        for image in &cycle.pod.images {
            let count = cache
                .image_holders(image)
                .max(cache.image_holders(&normalized(image)));
            if count > 0 {
                holders.insert(image.clone(), count);
            }
        }
        if holders.is_empty() {
            return false;
        }
        cycle.put(
            "ImageLocality",
            Spread {
                holders,
                total: cache.order.len().max(1) as i64,
            },
        );
        true
    }

    fn score(&self, cycle: &Cycle, node: &NodeInfo) -> i64 {
        let Some(spread) = cycle.get::<Spread>("ImageLocality") else {
            return 0;
        };
        let mut sum = 0i64;
        for image in &cycle.pod.images {
            let size = node
                .images
                .get(image)
                .or_else(|| node.images.get(&normalized(image)));
            if let (Some(size), Some(holders)) = (size, spread.holders.get(image)) {
                sum += size * holders / spread.total;
            }
        }
        let max = MAX_CONTAINER_THRESHOLD * cycle.pod.images.len().max(1) as i64;
        let clamped = sum.clamp(MIN_THRESHOLD, max);
        MAX_NODE_SCORE * (clamped - MIN_THRESHOLD) / (max - MIN_THRESHOLD)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::plugins::testing::{node, pod};
    use serde_json::json;

    #[test]
    fn nodes_with_the_image_score_higher() {
        let mut cache = Cache::default();
        let mut with = node("a", json!({}));
        with.images
            .insert("docker.io/library/nginx:latest".into(), 500 * 1024 * 1024);
        cache.set_node(with.clone());
        cache.set_node(node("b", json!({})));
        let mut cycle = Cycle::new(pod(json!({"containers": [{"image": "nginx"}]})));
        assert!(ImageLocality.pre_score(&mut cycle, &mut cache, &[]));
        let with_score = ImageLocality.score(&cycle, &with);
        assert!(with_score > 0, "{with_score}");
        assert_eq!(ImageLocality.score(&cycle, &node("b", json!({}))), 0);
        let mut other = Cycle::new(pod(json!({"containers": [{"image": "redis"}]})));
        assert!(!ImageLocality.pre_score(&mut other, &mut cache, &[]));
        assert_eq!(
            normalized("registry.local:5000/app"),
            "registry.local:5000/app:latest"
        );
        assert_eq!(normalized("team/app:1"), "docker.io/team/app:1");
    }
}
