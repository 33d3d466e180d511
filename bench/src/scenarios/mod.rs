pub mod cluster;
pub mod docs;
pub mod official;
pub mod reconnect;
pub mod replay;
pub mod workshop;
