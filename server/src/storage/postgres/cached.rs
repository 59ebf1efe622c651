//! Statements prepared once per connection and kept: a statement given as text is otherwise
//! prepared again on every call, one more round trip to PostgreSQL (parse and plan included)
//! before it runs. A chief's sync makes dozens of store calls, so that round trip was about
//! half of them. The wrappers keep the client's method names, so the store's SQL reads as
//! plain `client.query(sql, params)`.
//!
//! A cached statement names its table's columns as they were when it was prepared; a schema
//! migration applied by another server while this one runs fails such a statement once, and
//! the request is sent again. Migrations only add.

use std::ops::{Deref, DerefMut};

use tokio_postgres::types::ToSql;
use tokio_postgres::{Error, Row};

type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

/// A pooled connection whose statements are prepared once.
pub(super) struct Client(pub(super) deadpool_postgres::Object);

/// A transaction on such a connection.
pub(super) struct Transaction<'a>(deadpool_postgres::Transaction<'a>);

impl Client {
    pub(super) async fn query(&self, sql: &str, params: Params<'_>) -> Result<Vec<Row>, Error> {
        let statement = self.0.prepare_cached(sql).await?;
        self.0.query(&statement, params).await
    }

    pub(super) async fn query_opt(
        &self,
        sql: &str,
        params: Params<'_>,
    ) -> Result<Option<Row>, Error> {
        let statement = self.0.prepare_cached(sql).await?;
        self.0.query_opt(&statement, params).await
    }

    pub(super) async fn query_one(&self, sql: &str, params: Params<'_>) -> Result<Row, Error> {
        let statement = self.0.prepare_cached(sql).await?;
        self.0.query_one(&statement, params).await
    }

    pub(super) async fn execute(&self, sql: &str, params: Params<'_>) -> Result<u64, Error> {
        let statement = self.0.prepare_cached(sql).await?;
        self.0.execute(&statement, params).await
    }

    pub(super) async fn transaction(&mut self) -> Result<Transaction<'_>, Error> {
        Ok(Transaction(self.0.transaction().await?))
    }
}

impl Deref for Client {
    type Target = deadpool_postgres::Object;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl DerefMut for Client {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl Transaction<'_> {
    pub(super) async fn query(&self, sql: &str, params: Params<'_>) -> Result<Vec<Row>, Error> {
        let statement = self.0.prepare_cached(sql).await?;
        self.0.query(&statement, params).await
    }

    pub(super) async fn query_opt(
        &self,
        sql: &str,
        params: Params<'_>,
    ) -> Result<Option<Row>, Error> {
        let statement = self.0.prepare_cached(sql).await?;
        self.0.query_opt(&statement, params).await
    }

    pub(super) async fn query_one(&self, sql: &str, params: Params<'_>) -> Result<Row, Error> {
        let statement = self.0.prepare_cached(sql).await?;
        self.0.query_one(&statement, params).await
    }

    pub(super) async fn execute(&self, sql: &str, params: Params<'_>) -> Result<u64, Error> {
        let statement = self.0.prepare_cached(sql).await?;
        self.0.execute(&statement, params).await
    }

    pub(super) async fn commit(self) -> Result<(), Error> {
        self.0.commit().await
    }

    pub(super) async fn rollback(self) -> Result<(), Error> {
        self.0.rollback().await
    }
}

impl<'a> Deref for Transaction<'a> {
    type Target = deadpool_postgres::Transaction<'a>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}
