{#- The moment labels are known up to, as a naive New York local timestamp (outcome_available_at is
    local midnight after the flight's day). The var labels_as_of replays the past; unset, it is now. -#}
{% macro labels_cutoff() -%}
    {%- if var('labels_as_of') is not none -%}
        cast('{{ var("labels_as_of") }}' as timestamp)
    {%- else -%}
        (current_timestamp at time zone 'America/New_York')
    {%- endif -%}
{%- endmacro %}
