//! The log sink: a tracing layer writing records as JSON lines (or a pretty form for people),
//! to standard output or a file that is reopened on SIGHUP.
