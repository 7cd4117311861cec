//! Node networking. `pod_network` gives each pod a network namespace on the node's bridge with
//! an address from the node's pod CIDR; `proxy` turns Services into nftables rules; `routes`
//! connects the pod networks of the nodes.

pub mod dns;
pub mod nft;
pub mod pod_network;
pub mod policy;
pub mod proxy;
pub mod routes;
