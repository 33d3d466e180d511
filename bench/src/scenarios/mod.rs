pub mod docs;
pub mod replay;
pub mod workshop;
