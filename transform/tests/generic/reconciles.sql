{#-
  Fails on every row whose status is 'mismatch' (a difference beyond its tolerance), and
  names each one in dbt's log, e.g.
    invoice_reconciliation does not reconcile: invoice_id=G000000002 difference=12.34 ...
  (dbt itself only counts failing rows; the names come from this log line).
-#}
{% test reconciles(model, name_columns) %}
{% set failing %}
select * from {{ model }} where status = 'mismatch'
{% endset %}
{% if execute and flags.WHICH in ['test', 'build'] %}
  {% set found = run_query(failing) %}
  {% for row in found %}
    {% set names = [] %}
    {% for column in name_columns %}
      {% do names.append(column ~ '=' ~ partner_billing.plain(row[column])) %}
    {% endfor %}
    {% do log(model.identifier ~ ' does not reconcile: ' ~ names | join(' ')
        ~ ' difference=' ~ partner_billing.plain(row['difference'])
        ~ ' tolerance=' ~ partner_billing.plain(row['tolerance']), info=True) %}
  {% endfor %}
{% endif %}
{{ failing }}
{% endtest %}
