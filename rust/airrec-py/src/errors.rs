//! Maps core errors onto the exception classes of `airrec.errors` (defined in Python so they can
//! inherit from both `AirrecError` and `ValueError`/`TypeError`).

use airrec_core::Error;
use pyo3::prelude::*;
use pyo3::types::PyType;

fn class<'py>(py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyType>> {
    let module = py.import("airrec.errors")?;
    Ok(module.getattr(name)?.cast_into::<PyType>()?)
}

/// The `airrec.errors` class that stands for a core error variant.
fn class_name(err: &Error) -> &'static str {
    match err {
        Error::Bundle { .. } => "BundleError",
        Error::BundleChecksum { .. } => "BundleChecksumError",
        Error::BundleVersion { .. } => "BundleVersionError",
        Error::Config(_) => "ConfigError",
        Error::UnknownItem { .. } | Error::UnknownExternalItem { .. } => "UnknownItemError",
        Error::UnknownBehaviour { .. } => "UnknownBehaviourError",
        Error::Input(_) => "InputError",
        Error::Index(_) => "AirrecError",
    }
}

pub fn to_py(err: Error) -> PyErr {
    Python::attach(|py| match class(py, class_name(&err)) {
        Ok(cls) => PyErr::from_type(cls, err.to_string()),
        Err(import_error) => import_error,
    })
}

/// A Python exception of class `name` in `airrec.errors`.
pub fn py_error(name: &str, message: String) -> PyErr {
    Python::attach(|py| match class(py, name) {
        Ok(cls) => PyErr::from_type(cls, message),
        Err(import_error) => import_error,
    })
}

pub trait IntoPyResult<T> {
    fn py(self) -> PyResult<T>;
}

impl<T> IntoPyResult<T> for Result<T, Error> {
    fn py(self) -> PyResult<T> {
        self.map_err(to_py)
    }
}
