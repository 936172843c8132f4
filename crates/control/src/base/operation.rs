//! Long-running operations a mutation returns already done, as Google's do once they finish.

use crate::base::error::{Error, Result};
use google_cloud_longrunning::model::{Operation, operation};
use google_cloud_wkt::Any;

/// A finished long-running operation carrying `response`.
pub(crate) fn done_operation<M: google_cloud_wkt::message::Message + serde::Serialize>(
    prefix: &str,
    response: &M,
) -> Result<Operation> {
    use rand::Rng;
    let mut op = Operation::new();
    op.name = format!("operations/{prefix}.{:x}", rand::rng().random::<u64>());
    op.done = true;
    let any = Any::from_msg(response).map_err(|e| Error::internal(e.to_string()))?;
    op.result = Some(operation::Result::Response(Box::new(any)));
    Ok(op)
}
