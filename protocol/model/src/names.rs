//! Closed sets of named values: statuses, stances, roles, answers, and a
//! report's format, language and kind. Each is written once as variant →
//! name (plus any aliases a reader accepts), and gets the same behaviour:
//! `ALL`, `as_str`, `Display`, `FromStr` with the crate's typed error for an
//! unknown name, and serde by name (the JSON API and the report's JSON carry
//! the names). Values stored in documents add autosurgeon by name in
//! `schema.rs`.

/// `closed_names!(/// doc, Type, ErrorType::Variant, { Variant => "name" | "alias", … })`.
macro_rules! closed_names {
    ($(#[$meta:meta])* $name:ident, $error:ident :: $unknown:ident, { $($variant:ident => $text:literal $(| $alias:literal)*),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $error;
            fn from_str(s: &str) -> Result<Self, $error> {
                match s { $($text $(| $alias)* => Ok($name::$variant),)+ other => Err($error::$unknown(other.to_owned())) }
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let name = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
                name.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

pub(crate) use closed_names;
