//! The raw tables that migration 7 partitions on PostgreSQL, each defined
//! once: migrations 1 (`observations`) and 6 (`round_records`) create them
//! from these columns, the partitioned copy (`partitions`) adds `round_ms`
//! to the same columns and to the key, and the upgrade copies these
//! columns over. A column changed here changes all three alike.

/// A raw table as migrations 1 to 6 made it.
pub(super) struct RawTable {
    pub(super) name: &'static str,
    /// (column, type) in order; `{BLOB}` is the backend's byte string.
    columns: &'static [(&'static str, &'static str)],
    key: &'static str,
}

pub(super) const OBSERVATIONS: RawTable = RawTable {
    name: "observations",
    columns: &[
        ("agent", "TEXT NOT NULL"),
        ("campaign", "TEXT NOT NULL"),
        ("round", "BIGINT NOT NULL"),
        ("block", "TEXT NOT NULL"),
        ("state", "TEXT NOT NULL"),
        ("probes", "BIGINT NOT NULL"),
        ("replies", "BIGINT NOT NULL"),
        ("belief", "DOUBLE PRECISION NOT NULL"),
        ("availability", "DOUBLE PRECISION NOT NULL"),
        ("control", "BIGINT NOT NULL"),
        ("ts_ms", "BIGINT NOT NULL"),
    ],
    key: "agent, campaign, round, block",
};

pub(super) const ROUND_RECORDS: RawTable = RawTable {
    name: "round_records",
    columns: &[
        ("campaign", "TEXT NOT NULL"),
        ("round", "BIGINT NOT NULL"),
        ("agent", "TEXT NOT NULL"),
        ("chunk", "BIGINT NOT NULL"),
        ("chunks", "BIGINT NOT NULL"),
        ("space", "TEXT NOT NULL"),
        ("blocks", "BIGINT NOT NULL"),
        ("ts_ms", "BIGINT NOT NULL"),
        ("data", "{BLOB} NOT NULL"),
    ],
    key: "campaign, round, agent, chunk",
};

/// The tables partitioned on PostgreSQL (`partitions::TABLES`).
pub(super) const PARTITIONED: [&RawTable; 2] = [&ROUND_RECORDS, &OBSERVATIONS];

impl RawTable {
    /// The body of `CREATE TABLE name (...)`, as migrations 1 to 6 made it
    /// (with `{BLOB}` left for the migration to fill in).
    pub(super) fn body(&self) -> String {
        format!("{}, PRIMARY KEY ({})", self.column_defs(), self.key)
    }

    /// `CREATE TABLE name (...)` of the partitioned parent: the same
    /// columns and key, each with `round_ms` added (PostgreSQL requires the
    /// partition key in the primary key). Without `PARTITION BY`.
    pub(super) fn partitioned_ddl(&self) -> String {
        format!(
            "CREATE TABLE {} ({}, round_ms BIGINT NOT NULL, PRIMARY KEY ({}, round_ms))",
            self.name,
            self.column_defs().replace("{BLOB}", "BYTEA"),
            self.key
        )
    }

    /// The column names, comma-separated: what the upgrade copies.
    pub(super) fn column_names(&self) -> String {
        self.columns
            .iter()
            .map(|c| c.0)
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn column_defs(&self) -> String {
        self.columns
            .iter()
            .map(|(n, t)| format!("{n} {t}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_partitioned_copy_has_the_columns_and_key_of_the_original_and_round_ms() {
        assert_eq!(
            OBSERVATIONS.partitioned_ddl(),
            "CREATE TABLE observations (agent TEXT NOT NULL, campaign TEXT NOT NULL, \
             round BIGINT NOT NULL, block TEXT NOT NULL, state TEXT NOT NULL, \
             probes BIGINT NOT NULL, replies BIGINT NOT NULL, \
             belief DOUBLE PRECISION NOT NULL, availability DOUBLE PRECISION NOT NULL, \
             control BIGINT NOT NULL, ts_ms BIGINT NOT NULL, round_ms BIGINT NOT NULL, \
             PRIMARY KEY (agent, campaign, round, block, round_ms))"
        );
        assert!(ROUND_RECORDS
            .partitioned_ddl()
            .contains("data BYTEA NOT NULL, round_ms BIGINT NOT NULL, PRIMARY KEY (campaign, round, agent, chunk, round_ms)"));
        assert_eq!(
            ROUND_RECORDS.column_names(),
            "campaign, round, agent, chunk, chunks, space, blocks, ts_ms, data"
        );
        assert!(OBSERVATIONS
            .body()
            .ends_with("PRIMARY KEY (agent, campaign, round, block)"));
        assert!(ROUND_RECORDS.body().contains("data {BLOB} NOT NULL"));
    }
}
