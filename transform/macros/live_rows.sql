{#-
  The live rows of one of the tap's streams: one row per key, tombstones left out.

  PostgreSQL / Snowflake (and DuckDB without a JSONL folder): the target upserts by the
  stream's key, so the table holds one row per key; live rows are `_sdc_deleted_at IS NULL`.

  DuckDB with a JSONL folder (jsonl_dir below): target-jsonl appends every RECORD message to
  `<dir>/<stream>.jsonl`, so a key can occur more than once (a re-issued invoice, a
  shrinking snapshot, a re-listed invoice). The last message for a key wins, as it does in
  an upserting target; if it is a tombstone the key is gone. Every column is read as text
  (a column no message carries reads as NULL) and typed by the staging model.
-#}
{% macro live_rows(stream, keys, columns) %}
  {%- set unique = [] -%}
  {%- for column in columns if column not in unique -%}{% do unique.append(column) %}{%- endfor -%}
  {{ return(adapter.dispatch('live_rows', 'partner_billing')(stream, keys, unique)) }}
{% endmacro %}

{% macro default__live_rows(stream, keys, columns) %}
select {{ columns | join(', ') }}
from {{ source('tap_partner_billing', stream) }}
where _sdc_deleted_at is null
{% endmacro %}

{% macro duckdb__live_rows(stream, keys, columns) %}
{%- set folder = partner_billing.jsonl_dir() -%}
{%- if folder == '' -%}
  {{ return(default__live_rows(stream, keys, columns)) }}
{%- endif -%}
{%- set read = columns + ['_sdc_deleted_at'] -%}
select {{ columns | join(', ') }}
from (
  select *,
    row_number() over (partition by {{ keys | join(', ') }} order by "ordinality" desc) as _newest
  from read_json(
    '{{ folder }}/{{ stream }}.jsonl',
    format = 'newline_delimited',
    columns = { {%- for column in read %}'{{ column }}': 'VARCHAR'{{ ', ' if not loop.last }}{% endfor -%} }
  ) with ordinality
) as messages
where _newest = 1 and _sdc_deleted_at is null
{% endmacro %}

{#-
  The folder of target-jsonl's files the DuckDB target reads ('' : DuckDB tables, read as
  sources): the dbt var partner_billing_jsonl_dir, else the variable DBT_JSONL_DIR (Meltano's
  dbt utility sets it, `jsonl_dir`).
-#}
{% macro jsonl_dir() %}
  {{ return(var('partner_billing_jsonl_dir', env_var('DBT_JSONL_DIR', '')) | string) }}
{% endmacro %}
