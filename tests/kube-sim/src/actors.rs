//! Cluster actors (placeholder until the actors land).

use crate::Cluster;

pub struct Actors {
    _cluster: Cluster,
}

impl Actors {
    pub fn start(cluster: Cluster) -> Self {
        Actors { _cluster: cluster }
    }
}
