import QtQuick
import QtQuick.Controls
import QtQuick.Layouts
import Circuitscope.Inspector

// The feature card of one feature (a FeatureCardData): the label editor (Enter commits through
// card.commitLabel, which emits labelEdited), activation statistics, the histogram with this
// graph's activation marked, the top and quantile examples (a scrolling list), the output
// tokens the feature promotes and suppresses, and its top input tokens.
ColumnLayout {
    id: view

    required property InspectorColors colors
    property FeatureCardData card: null
    property int examplesHeight: 300

    spacing: view.colors.spacing

    readonly property bool ready: card !== null && card.hasRecord

    Label {
        visible: !view.ready
        text: "No feature statistics for this node."
        font.pointSize: view.colors.smallSize
        color: view.colors.textFaint
    }

    RowLayout {
        visible: view.ready
        Layout.fillWidth: true
        spacing: view.colors.spacing

        Label {
            text: view.ready ? view.card.title : ""
            font.bold: true
            font.pointSize: view.colors.baseSize + 1
            color: view.colors.text
        }
        TextField {
            id: labelField
            objectName: "featureLabelField"
            Layout.fillWidth: true
            placeholderText: "Label this " + (view.card ? view.card.noun : "feature") + "…"
            font.pointSize: view.colors.baseSize
            selectByMouse: true
            color: view.colors.text
            placeholderTextColor: view.colors.textFaint
            selectionColor: view.colors.accent
            selectedTextColor: view.colors.panel
            background: Rectangle {
                implicitHeight: 26
                radius: view.colors.radius
                color: view.colors.panel
                border.width: labelField.activeFocus ? 2 : 1
                border.color: labelField.activeFocus ? view.colors.accent : view.colors.border
            }
            text: view.ready ? view.card.label : ""
            onAccepted: {
                if (view.ready)
                    view.card.commitLabel(text)
                focus = false
            }
            Keys.onEscapePressed: {
                text = view.ready ? view.card.label : ""
                focus = false
            }
        }
    }
    // Typing breaks the text binding; whenever the stored label or the feature changes, show it.
    Connections {
        target: view.card
        function onLabelChanged() { labelField.text = view.card.label }
        function onRecordChanged() { labelField.text = view.ready ? view.card.label : "" }
    }

    Label {
        objectName: "featureStats"
        visible: view.ready
        Layout.fillWidth: true
        wrapMode: Text.Wrap
        font.pointSize: view.colors.smallSize
        color: view.colors.textMuted
        text: {
            if (!view.ready)
                return ""
            const parts = []
            if (view.card.hasActivation)
                parts.push("activation " + view.colors.formatNumber(view.card.activation, 3))
            parts.push("fires on " + (view.card.frequency * 100).toPrecision(3) + "% of tokens")
            parts.push("max " + view.colors.formatNumber(view.card.actMax, 3))
            parts.push("mean " + view.colors.formatNumber(view.card.actMean, 3))
            return parts.join(" · ")
        }
    }
    Label {
        visible: view.ready && view.card.quantiles.length > 0
        Layout.fillWidth: true
        wrapMode: Text.Wrap
        font.pointSize: view.colors.smallSize - 1
        color: view.colors.textFaint
        text: {
            if (!view.ready)
                return ""
            const parts = []
            const quantiles = view.card.quantiles
            for (let i = 0; i < quantiles.length; ++i) {
                const level = (quantiles[i].level * 100).toPrecision(3).replace(/\.?0+$/, "")
                parts.push("p" + level + " " + view.colors.formatNumber(quantiles[i].value, 3))
            }
            return parts.join("  ")
        }
    }

    Histogram {
        objectName: "featureHistogram"
        visible: view.ready && view.card.histogramCounts.length > 0
        Layout.fillWidth: true
        Layout.preferredHeight: 72
        colors: view.colors
        counts: view.ready ? view.card.histogramCounts : []
        edges: view.ready ? view.card.histogramEdges : []
        maxCount: view.ready ? view.card.histogramMaxCount : 0
        markerBin: view.ready ? view.card.markerBin : -1
        markerFraction: view.ready ? view.card.markerFraction : -1
    }

    Label {
        visible: view.ready
        text: "Examples"
        font.bold: true
        font.pointSize: view.colors.baseSize
        color: view.colors.text
    }
    Rectangle {
        visible: view.ready
        Layout.fillWidth: true
        Layout.preferredHeight: view.examplesHeight
        color: "transparent"
        border.color: view.colors.divider
        radius: view.colors.radius

        ListView {
            id: examples
            objectName: "featureExamples"
            anchors.fill: parent
            anchors.margins: 1
            clip: true
            model: view.ready ? view.card.examples : null
            boundsBehavior: Flickable.StopAtBounds
            ScrollBar.vertical: ScrollBar {}
            section.property: "group"
            section.delegate: Rectangle {
                required property string section
                width: examples.width
                height: sectionLabel.implicitHeight + 6
                color: view.colors.panelHeader
                Label {
                    id: sectionLabel
                    anchors.verticalCenter: parent.verticalCenter
                    anchors.left: parent.left
                    anchors.leftMargin: 4
                    text: parent.section
                    font.pointSize: view.colors.smallSize
                    font.bold: true
                    color: view.colors.textMuted
                }
            }
            delegate: ExampleRow {
                width: examples.width - 10
                colors: view.colors
            }
        }
    }

    RowLayout {
        visible: view.ready
        Layout.fillWidth: true
        spacing: view.colors.spacing
        TokenValueList {
            objectName: "featureTopLogits"
            Layout.fillWidth: true
            Layout.preferredWidth: 1
            Layout.alignment: Qt.AlignTop
            colors: view.colors
            title: "Promotes"
            model: view.ready ? view.card.topLogits : null
            barColor: view.colors.positive
        }
        TokenValueList {
            Layout.fillWidth: true
            Layout.preferredWidth: 1
            Layout.alignment: Qt.AlignTop
            colors: view.colors
            title: "Suppresses"
            model: view.ready ? view.card.bottomLogits : null
            barColor: view.colors.negative
        }
    }
    TokenValueList {
        visible: view.ready
        Layout.fillWidth: true
        colors: view.colors
        title: "Top input tokens"
        model: view.ready ? view.card.topInputs : null
        barColor: view.colors.featureKind
    }
}
