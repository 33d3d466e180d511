pub mod docs;
pub mod reconnect;
pub mod replay;
pub mod workshop;
