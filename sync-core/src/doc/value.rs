//! The bridge between serde values and automerge objects, for the parts of a document that are
//! written once and never edited in place (workflow events, photo references). Fields that people
//! edit concurrently (notes, check items, severity) are written key by key in `patrol` and `issue`
//! so that offline edits merge field by field instead of clobbering a whole record.

use automerge::{
    hydrate, transaction::Transactable, AutoCommit, ObjId, ObjType, ReadDoc, ScalarValue,
};
use serde::{de::DeserializeOwned, Serialize};
use serde_json::{Map, Number, Value as Json};

use super::DocError;

/// Appends `record` (any serde type that serializes to a JSON object) as a map at the end of
/// the list `list`.
pub(crate) fn push_record<T: Serialize>(
    doc: &mut AutoCommit,
    list: &ObjId,
    record: &T,
) -> Result<(), DocError> {
    let json = serde_json::to_value(record).map_err(|e| DocError::Schema(e.to_string()))?;
    let Json::Object(fields) = json else {
        return Err(DocError::Schema(
            "a record must serialize to an object".into(),
        ));
    };
    let index = doc.length(list);
    let map = doc.insert_object(list, index, ObjType::Map)?;
    write_fields(doc, &map, &fields)
}

fn write_fields(
    doc: &mut AutoCommit,
    map: &ObjId,
    fields: &Map<String, Json>,
) -> Result<(), DocError> {
    for (key, value) in fields {
        match value {
            Json::Object(inner) => {
                let child = doc.put_object(map, key.as_str(), ObjType::Map)?;
                write_fields(doc, &child, inner)?;
            }
            Json::Array(items) => {
                let child = doc.put_object(map, key.as_str(), ObjType::List)?;
                write_items(doc, &child, items)?;
            }
            scalar => doc.put(map, key.as_str(), to_scalar(scalar))?,
        }
    }
    Ok(())
}

fn write_items(doc: &mut AutoCommit, list: &ObjId, items: &[Json]) -> Result<(), DocError> {
    for (index, value) in items.iter().enumerate() {
        match value {
            Json::Object(inner) => {
                let child = doc.insert_object(list, index, ObjType::Map)?;
                write_fields(doc, &child, inner)?;
            }
            Json::Array(inner) => {
                let child = doc.insert_object(list, index, ObjType::List)?;
                write_items(doc, &child, inner)?;
            }
            scalar => doc.insert(list, index, to_scalar(scalar))?,
        }
    }
    Ok(())
}

fn to_scalar(value: &Json) -> ScalarValue {
    match value {
        Json::Bool(b) => ScalarValue::Boolean(*b),
        Json::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => ScalarValue::Int(i),
            (None, Some(u)) => ScalarValue::Uint(u),
            _ => ScalarValue::F64(n.as_f64().unwrap_or(0.0)),
        },
        Json::String(s) => ScalarValue::Str(s.as_str().into()),
        _ => ScalarValue::Null,
    }
}

/// Reads the object `obj` (map, list or text) as JSON: the value each key or index shows, with
/// byte values as null. One pass over the object's operations (`hydrate`): looking its keys up
/// one by one seeks through the document for each, which made reading a patrol's check items
/// most of what authorizing a change to it cost.
pub(crate) fn read_json(doc: &AutoCommit, obj: &ObjId) -> Result<Json, DocError> {
    Ok(hydrated_json(&doc.hydrate(obj, None)?))
}

fn hydrated_json(value: &hydrate::Value) -> Json {
    match value {
        hydrate::Value::Map(map) => Json::Object(
            map.iter()
                .map(|(key, item)| (key.clone(), hydrated_json(&item.value)))
                .collect(),
        ),
        hydrate::Value::List(list) => {
            Json::Array(list.iter().map(|item| hydrated_json(&item.value)).collect())
        }
        hydrate::Value::Text(text) => Json::String(text.to_string()),
        hydrate::Value::Scalar(scalar) => match scalar {
            ScalarValue::Str(s) => Json::String(s.to_string()),
            ScalarValue::Int(i) | ScalarValue::Timestamp(i) => Json::Number((*i).into()),
            ScalarValue::Uint(u) => Json::Number((*u).into()),
            ScalarValue::F64(f) => Number::from_f64(*f).map_or(Json::Null, Json::Number),
            ScalarValue::Counter(c) => Json::Number(i64::from(c).into()),
            ScalarValue::Boolean(b) => Json::Bool(*b),
            ScalarValue::Bytes(_) | ScalarValue::Unknown { .. } | ScalarValue::Null => Json::Null,
        },
    }
}

/// Reads every map in the list `list` as a `T`; a record that does not parse is a schema error.
pub(crate) fn read_records<T: DeserializeOwned>(
    doc: &AutoCommit,
    list: &ObjId,
) -> Result<Vec<T>, DocError> {
    let Json::Array(items) = read_json(doc, list)? else {
        return Err(DocError::Schema("expected a list".into()));
    };
    items
        .into_iter()
        .map(|item| serde_json::from_value(item).map_err(|e| DocError::Schema(e.to_string())))
        .collect()
}
