with

flights as (

    select * from {{ ref('stg_nycflights__flights') }}

),

planes as (

    select * from {{ ref('stg_nycflights__planes') }}

),

airports as (

    select * from {{ ref('stg_nycflights__airports') }}

),

weather as (

    select * from {{ ref('stg_nycflights__weather') }}

),

late_rates as (

    select * from {{ ref('int_late_rates_windowed') }}

),

carrier_rates as (

    select * from late_rates
    where entity_type = 'carrier'

),

origin_rates as (

    select * from late_rates
    where entity_type = 'origin'

),

dest_rates as (

    select * from late_rates
    where entity_type = 'dest'

),

route_rates as (

    select * from late_rates
    where entity_type = 'route'

),

tailnum_rates as (

    select * from late_rates
    where entity_type = 'tailnum'

),

joined as (

    select
        -- schedule, known in advance
        flights.flight_id,
        flights.flight_date,
        flights.month,
        flights.carrier,
        flights.origin,
        flights.dest,
        flights.route,
        flights.tailnum,
        flights.sched_dep_hour,
        flights.sched_arr_hour,
        cast(isodow(flights.flight_date) as integer) as day_of_week,
        flights.distance,

        -- static reference data
        cast(year(flights.flight_date) - planes.year_built as double) as plane_age_years,
        cast(planes.seats as double) as plane_seats,
        cast(planes.engines as double) as plane_engines,
        planes.manufacturer as plane_manufacturer,
        planes.engine_type as plane_engine_type,
        planes.tailnum is not null as has_plane_info,
        airports.faa is not null as dest_in_airports,

        -- observed weather at the scheduled local hour, standing in for a forecast
        weather.temp as origin_temp,
        weather.dewp as origin_dewp,
        weather.humid as origin_humid,
        weather.wind_speed as origin_wind_speed,
        weather.wind_gust as origin_wind_gust,
        weather.precip as origin_precip,
        weather.pressure as origin_pressure,
        weather.visib as origin_visib,

        -- trailing late rates over [D-8, D-2] and [D-29, D-2]
        carrier_rates.late_rate_7d as carrier_late_rate_7d,
        carrier_rates.late_rate_28d as carrier_late_rate_28d,
        origin_rates.late_rate_7d as origin_late_rate_7d,
        origin_rates.late_rate_28d as origin_late_rate_28d,
        dest_rates.late_rate_7d as dest_late_rate_7d,
        dest_rates.late_rate_28d as dest_late_rate_28d,
        route_rates.late_rate_7d as route_late_rate_7d,
        route_rates.late_rate_28d as route_late_rate_28d,
        tailnum_rates.late_rate_7d as tailnum_late_rate_7d,
        tailnum_rates.late_rate_28d as tailnum_late_rate_28d,
        cast(coalesce(route_rates.n_flights_28d, 0) as double) as route_flights_28d

    from flights
    left join planes
        on flights.tailnum = planes.tailnum
    left join airports
        on flights.dest = airports.faa
    left join weather
        on
            flights.origin = weather.origin
            and flights.flight_date = weather.observed_date
            and flights.sched_dep_hour = weather.observed_hour
    left join carrier_rates
        on
            flights.carrier = carrier_rates.entity_value
            and flights.flight_date = carrier_rates.flight_date
    left join origin_rates
        on
            flights.origin = origin_rates.entity_value
            and flights.flight_date = origin_rates.flight_date
    left join dest_rates
        on
            flights.dest = dest_rates.entity_value
            and flights.flight_date = dest_rates.flight_date
    left join route_rates
        on
            flights.route = route_rates.entity_value
            and flights.flight_date = route_rates.flight_date
    left join tailnum_rates
        on
            flights.tailnum = tailnum_rates.entity_value
            and flights.flight_date = tailnum_rates.flight_date

)

-- Sorted by the partition column so a day's rows sit together for the daily batch reads.
select * from joined
order by flight_date, flight_id
