// The exception hierarchy of fme. Library code throws; only main() turns an exception into an exit code.
// Every message names what it is about (file, tensor, field), what was expected and what was found.
#pragma once
#include <stdexcept>
#include <string>

namespace fme {

// Base of every error fme reports to the user.
struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};
// A file's content is malformed (safetensors header, JSON, tokenizer.json, ...).
struct FormatError : Error {
  using Error::Error;
};
// A config (config.json, plan, CLI option) is missing a field or has a bad value.
struct ConfigError : Error {
  using Error::Error;
};
// A tensor has the wrong shape or dtype, or is missing / unexpected.
struct ShapeError : Error {
  using Error::Error;
};
// The OS refused (open, read, write, rename, mmap).
struct IoError : Error {
  using Error::Error;
};
// Something is not supported (model type, dtype, tokenizer model).
struct UnsupportedError : Error {
  using Error::Error;
};

}  // namespace fme
