//! A small `--name value` command-line parser for the harnesses.

use std::collections::BTreeMap;
use std::str::FromStr;

/// The scenario name and its `--name value` options.
#[derive(Debug)]
pub struct Args {
    pub scenario: Option<String>,
    options: BTreeMap<String, String>,
}

impl Args {
    /// Parses `arguments`, which exclude the program name.
    ///
    /// # Errors
    ///
    /// Returns a message when an option has no value or a second
    /// positional argument appears.
    pub fn parse(arguments: impl IntoIterator<Item = String>) -> Result<Args, String> {
        let mut scenario = None;
        let mut options = BTreeMap::new();
        let mut arguments = arguments.into_iter();
        while let Some(argument) = arguments.next() {
            if let Some(name) = argument.strip_prefix("--") {
                let value = arguments
                    .next()
                    .ok_or_else(|| format!("option --{name} is missing its value"))?;
                options.insert(name.to_owned(), value);
            } else if scenario.is_none() {
                scenario = Some(argument);
            } else {
                return Err(format!("unexpected argument {argument:?}"));
            }
        }
        Ok(Args { scenario, options })
    }

    /// Removes option `name` and parses it, or returns `default` when it is
    /// absent.
    ///
    /// # Errors
    ///
    /// Returns a message naming the option when its value does not parse.
    pub fn take<T: FromStr>(&mut self, name: &str, default: T) -> Result<T, String> {
        match self.options.remove(name) {
            None => Ok(default),
            Some(value) => value
                .parse()
                .map_err(|_| format!("invalid value {value:?} for --{name}")),
        }
    }

    /// Removes option `name` and parses it as a comma-separated list.
    ///
    /// # Errors
    ///
    /// Returns a message naming the option when an item does not parse.
    pub fn take_list<T: FromStr>(&mut self, name: &str, default: Vec<T>) -> Result<Vec<T>, String> {
        match self.options.remove(name) {
            None => Ok(default),
            Some(value) => value
                .split(',')
                .map(|item| {
                    item.trim()
                        .parse()
                        .map_err(|_| format!("invalid item {item:?} in --{name} {value:?}"))
                })
                .collect(),
        }
    }

    /// Checks that every option was used.
    ///
    /// # Errors
    ///
    /// Returns a message naming the options that no scenario reads.
    pub fn finish(self) -> Result<(), String> {
        if self.options.is_empty() {
            return Ok(());
        }
        let names: Vec<String> = self
            .options
            .keys()
            .map(|name| format!("--{name}"))
            .collect();
        Err(format!("unknown option(s): {}", names.join(", ")))
    }
}
