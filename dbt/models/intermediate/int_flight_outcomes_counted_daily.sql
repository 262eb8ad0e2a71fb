with

flights as (

    select * from {{ ref('stg_nycflights__flights') }}

),

labels as (

    select * from {{ ref('int_flights_labelled') }}

),

scheduled as (

    -- Driven by the schedule, not the labels, so every (entity, day) a flight needs has a row even when
    -- none of its flights is labelled yet: the trailing windows are then framed on every such day.
    select
        flights.flight_date,
        flights.carrier,
        flights.origin,
        flights.dest,
        flights.route,
        flights.tailnum,
        labels.is_late
    from flights
    left join labels on flights.flight_id = labels.flight_id

),

by_entity as (

    select
        'carrier' as entity_type,
        carrier as entity_value,
        flight_date,
        is_late
    from scheduled
    union all
    select
        'origin' as entity_type,
        origin as entity_value,
        flight_date,
        is_late
    from scheduled
    union all
    select
        'dest' as entity_type,
        dest as entity_value,
        flight_date,
        is_late
    from scheduled
    union all
    select
        'route' as entity_type,
        route as entity_value,
        flight_date,
        is_late
    from scheduled
    union all
    select
        'tailnum' as entity_type,
        tailnum as entity_value,
        flight_date,
        is_late
    from scheduled
    where tailnum is not null

),

counted as (

    select
        entity_type,
        entity_value,
        flight_date,
        count(*) as n_scheduled,
        count(is_late) as n_flights,
        coalesce(sum(is_late), 0) as n_late
    from by_entity
    group by entity_type, entity_value, flight_date

)

select
    entity_type,
    entity_value,
    flight_date,
    cast(n_scheduled as integer) as n_scheduled,
    cast(n_flights as integer) as n_flights,
    cast(n_late as integer) as n_late
from counted
