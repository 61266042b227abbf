{#-
  `dbt run-operation reconciliation_report`: the reconciliation table and the top customers
  by cost, as plain text (what scripts/demo ends with). Works on every target.
-#}
{% macro reconciliation_report(top=5) %}
{% set invoices = run_query(
    "select invoice_id, " ~ cents('listed_total') ~ ", " ~ cents('lines_total') ~ ", "
    ~ "difference, status from " ~ ref('invoice_reconciliation') ~ " order by invoice_id") %}
{% set line = "%-12s %18s %18s %14s  %s" %}
{% do print("Invoice reconciliation (Partner Center total vs sum of billed reconciliation lines)") %}
{% do print(line | format('invoice', 'listed total', 'sum of lines', 'difference', 'status')) %}
{% for row in invoices %}
  {#- the exact difference, without the trailing zeros of its 18-digit scale -#}
  {% set difference = partner_billing.plain(row[3]) %}
  {% do print(line | format(row[0], '-' if row[1] is none else row[1],
      '-' if row[2] is none else row[2], difference, row[4])) %}
{% endfor %}
{% set customers = run_query(
    "select customer_name, currency, " ~ cents('sum(billed_total)') ~ ", "
    ~ cents('sum(unbilled_total)') ~ ", " ~ cents('sum(total_cost)') ~ " from "
    ~ ref('customer_month_cost') ~ " group by customer_id, customer_name, currency"
    ~ " order by sum(total_cost) desc limit " ~ top) %}
{% set line = "%-28s %-8s %18s %18s %18s" %}
{% do print("") %}
{% do print("Top " ~ top ~ " customers by cost (all months loaded)") %}
{% do print(line | format('customer', 'currency', 'billed', 'unbilled', 'total')) %}
{% for row in customers %}
  {% do print(line | format(row[0], row[1], row[2], row[3], row[4])) %}
{% endfor %}
{% endmacro %}

{#- A value as text; a decimal without the trailing zeros of its scale, '-' for null. -#}
{% macro plain(value) %}
  {%- if value is none -%}{{ return('-') }}
  {%- elif value is number and value.normalize is defined -%}{{ return('{:f}'.format(value.normalize())) }}
  {%- else -%}{{ return(value | string) }}{%- endif -%}
{% endmacro %}
