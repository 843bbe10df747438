"""SQL statements written out by hand from the models' metadata, for the hot paths whose ORM
query costs more CPU to build and compile than its round trip (docs/api.md, Performance): a
model's columns in a SELECT and a row back into an instance as the ORM builds one
(ModelColumns), a statement built once per database (PerDatabase), and an unsaved instance's
INSERT as part of a larger statement (insert_select); and the mark of a statement to prepare
(prepared)."""

from collections.abc import Sequence
from typing import Any, ClassVar, Self, cast

from django.db import connections
from django.db.models import Model

# The start of a statement the database backend prepares on the connection (panel.postgresql):
# PostgreSQL then plans it once per connection instead of on every run. Planning cost the API's
# lookups more than running them (docs/api.md, Performance). Only for statements whose best
# plan does not depend on their parameters' values (lookups by a unique key): a prepared
# statement may run a generic plan, made without them.
PREPARED = "/* prepared */ "


def prepared(sql: str) -> str:
    """`sql` marked for the backend to prepare (PREPARED)."""
    return PREPARED + sql


class ModelColumns:
    """One model's concrete columns in a SELECT written out by hand (`alias` is its table's alias
    there), and a row's values for them back into an instance as the ORM builds one: from_db,
    each field's database converters applied. For the hot reads whose ORM query costs more CPU
    to build and compile than its round trip (docs/api.md, Performance)."""

    def __init__(self, model: type[Model], alias: str, using: str) -> None:
        connection = connections[using]
        self.model, self.using = model, using
        fields = list(model._meta.concrete_fields)
        self.names = [f.attname for f in fields]
        # Concrete fields: each has its column.
        self.sql = ", ".join(
            f"{alias}.{connection.ops.quote_name(cast(str, f.column))}" for f in fields
        )
        self.converters = []
        for index, model_field in enumerate(fields):
            if found := field_converters(model_field, connection):
                self.converters.append((index, found, model_field.cached_col))

    def __len__(self) -> int:
        return len(self.names)

    def build(self, values: Sequence[Any]) -> Any:
        """The instance of `values` (this model's columns, in order)."""
        values = list(values)
        connection = connections[self.using]
        for index, converters, expression in self.converters:
            for converter in converters:
                values[index] = converter(values[index], expression, connection)
        return self.model.from_db(self.using, self.names, values)


def field_converters(model_field: Any, connection: Any) -> list[Any]:
    """The converters the ORM's compiler applies to a column of `model_field` (a JSON field's
    text decoded, for example); most columns have none."""
    expression = model_field.cached_col
    return connection.ops.get_db_converters(expression) + expression.get_db_converters(connection)


class PerDatabase:
    """A statement written out once per database alias: `get(alias)` builds the subclass's
    instance on first use and keeps it for the process's life."""

    _by_alias: ClassVar[dict[str, Any]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._by_alias = {}

    def __init__(self, alias: str) -> None:
        raise NotImplementedError

    @classmethod
    def get(cls, alias: str) -> Self:
        found = cls._by_alias.get(alias)
        if found is None:
            found = cls._by_alias.setdefault(alias, cls(alias))
        return found


def insert_select(
    instance: Model, using: str, *, pk_sql: str, rows_from: str
) -> tuple[str, list[Any]]:
    """The INSERT of an unsaved `instance` inside a larger statement (a data-modifying CTE):
    `INSERT INTO <table> (<pk>, <columns>) SELECT <pk_sql>, %s, ... FROM <rows_from>`, one row
    per row of `rows_from` (none when it is empty), the primary key given by `pk_sql` (an id the
    statement drew from the table's sequence). The values are what Model.save() sends: each
    field's pre_save (auto_now fields set on the instance too), then its get_db_prep_save. As
    with bulk_create, no pre_save or post_save signal is sent; once the statement ran, the
    caller marks the instance saved (mark_saved)."""
    meta = instance._meta
    connection = connections[using]
    quote = connection.ops.quote_name
    pk = meta.pk
    assert pk is not None  # every concrete model has one
    # As save(): the database computes a generated field itself.
    fields = [f for f in meta.local_concrete_fields if f is not pk and not f.generated]
    values = []
    for model_field in fields:
        value = model_field.pre_save(instance, True)
        if hasattr(value, "resolve_expression"):  # db_default, F(): not written here
            raise TypeError(f"{meta.label}.{model_field.name} is an expression: save() it.")
        values.append(model_field.get_db_prep_save(value, connection))
    columns = ", ".join(quote(cast(str, f.column)) for f in [pk, *fields])
    placeholders = ", ".join(["%s"] * len(fields))
    sql = (
        f"INSERT INTO {quote(meta.db_table)} ({columns}) "  # noqa: S608 - names are ours
        f"SELECT {pk_sql}, {placeholders} FROM {rows_from}"
    )
    return sql, values


def sequence_next_sql(model: type[Model], using: str) -> str:
    """An SQL expression drawing the next value of `model`'s primary key sequence (PostgreSQL:
    its serial or identity column's)."""
    connection = connections[using]
    assert connection.vendor == "postgresql", connection.vendor
    pk = model._meta.pk
    assert pk is not None
    table = connection.ops.quote_name(model._meta.db_table)
    # Literals of our own names: a table name may hold no quote (db_table is ours).
    return f"nextval(pg_get_serial_sequence('{table}', '{pk.column}'))"


def mark_saved(instance: Model, pk: Any, using: str) -> None:
    """What Model.save() leaves on an instance it inserted: its primary key, and the state
    that says it is in the database `using`."""
    instance.pk = pk
    instance._state.adding = False
    instance._state.db = using
