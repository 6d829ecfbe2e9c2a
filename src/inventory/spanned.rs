//! `Spanned<T>`: a value of the inventory with where it was written, as serde-saphyr reads
//! it, and with the JSON Schema of the value itself (a location is not part of the file).
use std::borrow::Cow;

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Deserializer};
use serde_saphyr::Location;

/// A raw inventory value and its source locations (serde-saphyr's `Spanned`, which this
/// mirrors field for field). The raw types use this one so that deriving `JsonSchema` on
/// them gives each field the schema of its value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Spanned<T> {
    /// The value as written.
    pub value: T,
    /// Where the value is used (an alias's use site, else where it is written).
    pub referenced: Location,
    /// Where the value is written.
    pub defined: Location,
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Spanned<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let spanned = serde_saphyr::Spanned::<T>::deserialize(deserializer)?;
        Ok(Spanned {
            value: spanned.value,
            referenced: spanned.referenced,
            defined: spanned.defined,
        })
    }
}

impl<T: JsonSchema> JsonSchema for Spanned<T> {
    fn inline_schema() -> bool {
        T::inline_schema()
    }

    fn schema_name() -> Cow<'static, str> {
        T::schema_name()
    }

    fn schema_id() -> Cow<'static, str> {
        T::schema_id()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        T::json_schema(generator)
    }
}
