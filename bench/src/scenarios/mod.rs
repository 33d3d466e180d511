pub mod workshop;
