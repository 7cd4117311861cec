//! Node networking. `pod_network` gives each pod a network namespace on the node's bridge with
//! an address from the node's pod CIDR; Services, DNS and NetworkPolicy build on it later.

pub mod pod_network;
