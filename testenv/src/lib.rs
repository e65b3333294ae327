//! What kreload's tests and demo stand on, kept out of the product: a local control plane
//! made of the real binaries, the local registration of kreload's webhooks, the demo and
//! the soak.

pub mod certmanager;
pub mod controlplane;
pub mod demo;
pub mod flux;
pub mod helmrepo;
pub mod kubeconfig;
pub mod memory;
pub mod netns;
pub mod registration;
pub mod soak;
pub mod tools;
pub mod webhook_client;
